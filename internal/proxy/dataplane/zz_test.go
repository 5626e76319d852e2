package dataplane

import "testing"

func TestZZDirect(t *testing.T) {
	addr := streamEchoBackend(t)
	g := openStream(t, h2cClient(), "http://"+addr+"/pkg.Svc/Stream")
	if err := g.ping(streamMsg()); err != nil {
		t.Fatal(err)
	}
	g.close(t)
}
