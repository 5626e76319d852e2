package tlsconfig

import (
	"net"
	"testing"
)

// vecConn records the vectored writes it is given.
type vecConn struct {
	net.Conn
	got []string
}

func (c *vecConn) WriteVec(a, b []byte) (int, error) {
	c.got = append(c.got, string(a)+"|"+string(b))
	return len(a) + len(b), nil
}

// The prefixConn passes a vectored write on to the connection it wraps
// (a response's head and body in one system call).
func TestPrefixConnPassesWriteVecOn(t *testing.T) {
	inner := &vecConn{}
	c := &prefixConn{Conn: inner, prefix: []byte("x")}
	if n, err := c.WriteVec([]byte("head"), []byte("body")); n != 8 || err != nil {
		t.Fatalf("WriteVec = %d, %v", n, err)
	}
	if len(inner.got) != 1 || inner.got[0] != "head|body" {
		t.Fatalf("the wrapped connection got %q, want one WriteVec of head and body", inner.got)
	}
}
