package rpc

// Exported for the tests of package rpc_test.
var (
	EncodeTimeout = encodeTimeout
	EncodeMessage = encodeMessage
	DecodeMessage = decodeMessage
)

var ParseTarget = parseTarget

var StatusOf = statusOf
