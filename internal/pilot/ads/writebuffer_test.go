package ads

import (
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// writeLog records the size of every Write on the connections a listener
// accepts.
type writeLog struct {
	net.Listener
	mu     sync.Mutex
	writes []int
}

func (l *writeLog) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &loggedConn{Conn: c, log: l}, nil
}

func (l *writeLog) largest() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, w := range l.writes {
		n = max(n, w)
	}
	return n
}

type loggedConn struct {
	net.Conn
	log *writeLog
}

func (c *loggedConn) Write(b []byte) (int, error) {
	c.log.mu.Lock()
	c.log.writes = append(c.log.writes, len(b))
	c.log.mu.Unlock()
	return c.Conn.Write(b)
}

// TestLargeResponseLeavesInLargeWrites: a server with ServerOptions hands a
// large response to its connection in writes of DefaultWriteBuffer, not in
// grpc-go's default 32 KiB pieces (15 system calls per proxy for a 470 KB
// route configuration).
func TestLargeResponseLeavesInLargeWrites(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logged := &writeLog{Listener: lis}
	g := grpc.NewServer(ServerOptions()...)
	mesh := newTestMesh()
	s := New(Config{Generate: mesh.generate, ClusterHost: parseClusterHost, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.Register(g)
	go g.Serve(logged)
	t.Cleanup(g.Stop)
	e := &env{mesh: mesh, ads: s, grpc: g, addr: lis.Addr().String(), reg: prometheus.NewRegistry(), t: t}

	st := baseState()
	st.big = 200 << 10 // three clusters: 600 KB
	s.Push(mesh.set("v1", st), nil)
	// Static windows as mast-proxy's and istio-agent's: grpc-go's default
	// 64 KiB stream window would split the response by flow control.
	c := e.sotw(t, e.dial(t, grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(4<<20)), "a")
	c.request(ClusterType)
	c.expect(ClusterType, "v1", clA, clB, clC)
	if got := logged.largest(); got < DefaultWriteBuffer {
		t.Fatalf("a 600 KB response left in writes of at most %d bytes, want %d", got, DefaultWriteBuffer)
	}
}
