package main_test

import "syscall"

var sigterm = syscall.SIGTERM
