package httpproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/rawsock"
	"github.com/mast-mesh/mast/internal/proxy/upstream"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
	"github.com/mast-mesh/mast/internal/proxy/xdstest"
	"github.com/mast-mesh/mast/internal/telemetry/reporter"
)

// proxyOpts shape a test proxy: one listener whose routes send "/" to
// cluster "c" (the backend) and "/nocluster" to a cluster that does not
// exist (a local reply).
type proxyOpts struct {
	hcm        func(*hcmv3.HttpConnectionManager)
	h2Upstream bool
	routes     func(*routev3.RouteConfiguration)
	// tls, when set, terminates TLS with it (its NextProtos are ALPN).
	tls *tls.Config
	// more are further hosts of cluster "c"; cluster changes it.
	more    []string
	cluster func(*clusterv3.Cluster)
	// parkIdle is the server's ParkIdle (0: idle connections park at
	// once).
	parkIdle time.Duration
	// telemetry: the server reports its requests (a reporter with the
	// default configuration).
	telemetry bool
	// raw: connections are served through rawsock, as the listener's
	// are (their responses go out with WriteVec).
	raw bool
}

type testProxy struct {
	addr string
	srv  *Server
	// cancel ends the connections' context (the proxy shutting down).
	cancel context.CancelFunc
}

func startTestProxy(t testing.TB, backend string, o proxyOpts) *testProxy {
	t.Helper()
	hcm := xdstest.HCM("r")
	if o.hcm != nil {
		o.hcm(hcm)
	}
	cl := xdstest.StaticCluster("c", append([]string{backend}, o.more...)...)
	if o.h2Upstream {
		cl.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
	}
	if o.cluster != nil {
		o.cluster(cl)
	}
	rc := xdstest.RouteConfig("r", []string{"*"}, xdstest.RouteTo("/nocluster", "missing"), xdstest.RouteTo("/", "c"))
	if o.routes != nil {
		o.routes(rc)
	}
	snap := xdsparse.EmptySnapshot()
	var err error
	for _, step := range []struct {
		typ string
		res *anypb.Any
	}{
		{xdsparse.ClusterType, xdstest.Any(cl)},
		{xdsparse.RouteType, xdstest.Any(rc)},
		{xdsparse.ListenerType, xdstest.Any(xdstest.ListenerWith("l", "127.0.0.1:1", hcm))},
	} {
		if snap, err = xdsparse.Apply(snap, step.typ, "1", []*anypb.Any{step.res}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	mgr := upstream.NewManager(log)
	var cfg atomic.Pointer[Config]
	cfg.Store(&Config{Routes: snap.Routes, Clusters: mgr.Update(snap.Clusters, snap.Endpoints)})
	srv := NewServer(&cfg, mgr, log)
	srv.ParkIdle = o.parkIdle
	if o.telemetry {
		srv.Telemetry = reporter.New(reporter.Config{})
	}
	l := snap.Listeners["l"]
	chain := l.Default
	if chain == nil {
		chain = l.Chains[0]
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				if o.raw {
					nc = rawsock.Wrap(nc)
				}
				if o.tls != nil {
					tc := tls.Server(nc, o.tls)
					if tc.Handshake() != nil {
						nc.Close()
						wg.Done()
						return
					}
					nc = tc
				}
				// Idle connections park at once: every test runs its
				// connections through the idle poller between requests.
				srv.ServeConnDetached(ctx, nc, chain.HTTP, wg.Done)
			}()
		}
	}()
	return &testProxy{addr: ln.Addr().String(), srv: srv, cancel: cancel}
}

// seenRequest is what a backend received.
type seenRequest struct {
	proto, method, uri string
	header             http.Header
	body               string
}

// recordingBackend serves HTTP/1.1 (and h2c when h2 is set) with handler
// after recording each request; it returns the address and the record.
func recordingBackend(t testing.TB, h2 bool, handler http.HandlerFunc) (string, chan seenRequest) {
	seen := make(chan seenRequest, 16)
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select { // record the first requests; never block a busy test
		case seen <- seenRequest{proto: r.Proto, method: r.Method, uri: r.RequestURI, header: r.Header.Clone(), body: string(b)}:
		default:
		}
		if handler != nil {
			handler(w, r)
		}
	})
	if h2 {
		h = h2c.NewHandler(h, &http2.Server{})
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://"), seen
}

// h2Client speaks HTTP/2 frames directly, so tests see exactly what the
// proxy sends (Go's client would hide duplicates and add its own fields).
type h2Client struct {
	t   *testing.T
	nc  net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
	// settings are the server's first SETTINGS.
	settings   map[http2.SettingID]uint32
	connWindow uint32 // the server's first connection-level WINDOW_UPDATE
}

func dialH2(t *testing.T, addr string, tc *tls.Config) *h2Client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if tc != nil {
		c := tls.Client(nc, tc)
		if err := c.Handshake(); err != nil {
			t.Fatal(err)
		}
		nc = c
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &h2Client{t: t, nc: nc, settings: map[http2.SettingID]uint32{}}
	c.enc = hpack.NewEncoder(&c.buf)
	c.fr = http2.NewFramer(nc, nc)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	io.WriteString(nc, http2.ClientPreface)
	c.fr.WriteSettings()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			sf.ForeachSetting(func(s http2.Setting) error { c.settings[s.ID] = s.Val; return nil })
			c.fr.WriteSettingsAck()
			return c
		}
	}
}

// request sends a HEADERS frame with the pseudo-headers first.
func (c *h2Client) request(id uint32, method, path string, fields [][2]string, endStream bool) {
	c.buf.Reset()
	c.enc.WriteField(hpack.HeaderField{Name: ":method", Value: method})
	c.enc.WriteField(hpack.HeaderField{Name: ":scheme", Value: "http"})
	c.enc.WriteField(hpack.HeaderField{Name: ":authority", Value: "example.com"})
	c.enc.WriteField(hpack.HeaderField{Name: ":path", Value: path})
	for _, f := range fields {
		c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.buf.Bytes(), EndHeaders: true, EndStream: endStream}); err != nil {
		c.t.Fatal(err)
	}
}

// h2Response is what came back on one stream.
type h2Response struct {
	fields   []hpack.HeaderField
	body     string
	trailers []hpack.HeaderField
	reset    http2.ErrCode
	wasReset bool
	goAway   *http2.GoAwayFrame
}

func (r *h2Response) status() string { return r.get(":status") }

func (r *h2Response) get(name string) string {
	for _, f := range r.fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

func (r *h2Response) count(name string) int {
	n := 0
	for _, f := range r.fields {
		if f.Name == name {
			n++
		}
	}
	return n
}

// response reads frames until stream id ends (END_STREAM or RST_STREAM) or
// the connection goes away.
func (c *h2Client) response(id uint32) *h2Response {
	c.t.Helper()
	r := &h2Response{}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			if r.goAway != nil {
				return r
			}
			c.t.Fatalf("stream %d: %v", id, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				c.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				c.fr.WritePing(true, f.Data)
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 && c.connWindow == 0 {
				c.connWindow = f.Increment
			}
		case *http2.GoAwayFrame:
			r.goAway = f
			if f.LastStreamID < id {
				return r
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			if r.fields == nil {
				r.fields = f.Fields
			} else {
				r.trailers = f.Fields
			}
			if f.StreamEnded() {
				return r
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			r.body += string(f.Data())
			if len(f.Data()) > 0 {
				c.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
				c.fr.WriteWindowUpdate(id, uint32(len(f.Data())))
			}
			if f.StreamEnded() {
				return r
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				r.reset, r.wasReset = f.ErrCode, true
				return r
			}
		}
	}
}
