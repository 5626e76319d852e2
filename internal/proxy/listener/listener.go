// Package listener runs the proxy's bound listeners: it binds what LDS
// asks for, keeps sockets of listeners whose address did not change (their
// connections keep the configuration they were accepted under), and closes
// the ones that went away.
package listener

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/httpproxy"
	"github.com/mast-mesh/mast/internal/proxy/overload"
	"github.com/mast-mesh/mast/internal/proxy/rawsock"
	"github.com/mast-mesh/mast/internal/proxy/tcpproxy"
	"github.com/mast-mesh/mast/internal/proxy/tlsconfig"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

// Info describes a listener for the admin interface.
type Info struct {
	Name    string
	Address string // configured
	Bound   string // actual socket address, "" when not bound
	Error   string
}

type running struct {
	cfg   atomic.Pointer[xdsparse.Listener]
	ln    net.Listener
	bound string
	err   string
	close func()
	// acceptErr is the last accept error while accepting fails (EMFILE,
	// ENFILE, ENOBUFS...), nil while the listener accepts.
	acceptErr atomic.Pointer[string]
	// gone is set when the listener is removed: its connections stop
	// taking requests (follow.go).
	gone atomic.Bool
}

// Manager owns the bound listeners.
type Manager struct {
	mu     sync.Mutex
	active map[string]*running
	http   *httpproxy.Server
	tcp    *tcpproxy.Proxy
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	conns  sync.WaitGroup
	// Listen binds a socket (net.Listen by default).
	Listen func(network, addr string) (net.Listener, error)
	// virtual indexes the listeners that do not bind, for use_original_dst
	// hand-off (origdst.go).
	virtual atomic.Pointer[virtualListeners]
	// InspectTimeouts counts connections whose first bytes did not come
	// within the listener filters' timeout.
	InspectTimeouts atomic.Uint64
	// AcceptErrors counts episodes of failing accepts (one per run of
	// consecutive failures).
	AcceptErrors atomic.Uint64
	// TLS terminates TLS for filter chains with a TLS context (see tls.go);
	// nil refuses connections to such chains.
	TLS      *tlsconfig.Builder
	TLSStats TLSStats
	// Overload, when set, caps connections and pauses accepting under
	// memory pressure.
	Overload *overload.Manager
}

// NewManager returns a manager serving through the HTTP and TCP proxies.
func NewManager(h *httpproxy.Server, t *tcpproxy.Proxy, log *slog.Logger) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{active: map[string]*running{}, http: h, tcp: t, log: log, ctx: ctx, cancel: cancel,
		Listen: func(n, a string) (net.Listener, error) { return net.Listen(n, a) }}
}

// Update reconciles the running listeners with ls. It returns the errors of
// listeners that could not be bound (the others are running).
func (m *Manager) Update(ls map[string]*xdsparse.Listener) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := newVirtualListeners(ls)
	m.virtual.Store(&v)
	var errs []string
	for name, r := range m.active {
		l, ok := ls[name]
		if !ok || !l.BindToPort || l.Address != r.cfg.Load().Address || l.Network != r.cfg.Load().Network {
			r.close()
			r.gone.Store(true)
			delete(m.active, name)
			m.log.Info("listener removed", "name", name)
		}
	}
	names := make([]string, 0, len(ls))
	for n := range ls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		l := ls[name]
		if !l.BindToPort {
			continue
		}
		if r, ok := m.active[name]; ok {
			if r.cfg.Load() != l {
				r.cfg.Store(l)
				m.log.Info("listener updated in place", "name", name)
			}
			continue
		}
		network := l.Network
		if network == "" {
			network = "tcp"
		}
		if network == "unix" {
			removeStaleSocket(l.Address)
		}
		ln, err := m.Listen(network, l.Address)
		if err != nil {
			errs = append(errs, fmt.Sprintf("listener %q: bind %s: %v", name, l.Address, err))
			continue
		}
		r := &running{ln: ln, bound: ln.Addr().String()}
		r.cfg.Store(l)
		var once sync.Once
		r.close = func() { once.Do(func() { ln.Close() }) }
		m.active[name] = r
		go m.accept(r)
		m.log.Info("listener bound", "name", name, "addr", r.bound)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", joinLines(errs))
	}
	return nil
}

func joinLines(s []string) string {
	out := ""
	for i, e := range s {
		if i > 0 {
			out += "; "
		}
		out += e
	}
	return out
}

// Accept back-off bounds: a failing accept (out of file descriptors, say)
// is retried, never fatal, from acceptBackoffMin doubling to
// acceptBackoffMax.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

func (m *Manager) accept(r *running) {
	delay := acceptBackoffMin
	for {
		// Above the heap watermark, leave new connections in the backlog.
		for m.Overload.AcceptPaused() {
			t := time.NewTimer(50 * time.Millisecond)
			select {
			case <-t.C:
			case <-m.ctx.Done():
				t.Stop()
				return
			}
		}
		nc, err := r.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Any other error (EMFILE, ENFILE, ENOBUFS, ECONNABORTED...) is
			// transient: the socket is still bound, so giving up would
			// black-hole its traffic. Report the listener unhealthy (not
			// ready) and keep trying.
			msg := err.Error()
			if old := r.acceptErr.Swap(&msg); old == nil {
				m.AcceptErrors.Add(1)
				m.log.Warn("accept failing; retrying", "listener", r.cfg.Load().Name, "addr", r.bound, "error", err)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-m.ctx.Done():
				t.Stop()
				return
			}
			delay = min(2*delay, acceptBackoffMax)
			continue
		}
		if r.acceptErr.Swap(nil) != nil {
			m.log.Info("accepting again", "listener", r.cfg.Load().Name, "addr", r.bound)
		}
		delay = acceptBackoffMin
		if !m.Overload.AcquireConn() {
			nc.Close()
			continue
		}
		cfg := r.cfg.Load()
		port := uint32(0)
		if a, ok := nc.LocalAddr().(*net.TCPAddr); ok {
			port = uint32(a.Port)
		}
		m.conns.Add(1)
		go func() {
			// done runs once the connection is over: an idle HTTP
			// connection may outlive this goroutine (parked).
			var closeNetwork func()
			done := func() {
				if closeNetwork != nil {
					closeNetwork()
				}
				m.Overload.ReleaseConn()
				m.conns.Done()
			}
			detached := false
			defer func() {
				if !detached {
					done()
				}
			}()
			// Chain selection may read the first bytes (TLS or not, SNI,
			// ALPN) and terminates TLS: off the accept loop.
			nc, cfg, port := m.originalDst(nc, cfg, port)
			// Reads and writes without the runtime's syscall
			// bookkeeping (rawsock: sysmon stays asleep).
			nc = rawsock.Wrap(nc)
			nc, proto, ok := m.inspectApp(nc, cfg)
			if !ok {
				nc.Close()
				return
			}
			nc, chain := m.selectChain(nc, cfg, port, proto)
			// Network filters (RBAC on connections, the Mixer) decide
			// first, and those that ran see the connection end.
			var fc *filter.Conn
			if chain != nil && len(chain.Network) > 0 {
				fc = filter.NewConn(nc)
				fc.Services = m.http.Services
				ran, ok := filter.RunNetwork(chain.Network, fc)
				closeNetwork = func() { filter.CloseNetwork(chain.Network, ran, fc) }
				if !ok {
					nc.Close()
					return
				}
			}
			switch {
			case chain == nil:
				nc.Close()
			case chain.HTTP != nil:
				detached = true
				m.http.ServeConnDetached(httpproxy.WithFollow(m.ctx, m.follow(r, cfg, chain)), nc, chain.HTTP, done)
			case chain.TCP != nil:
				m.tcp.Serve(m.ctx, nc, chain.TCP, fc)
			default:
				nc.Close()
			}
		}()
	}
}

// Healthy reports whether every bound listener accepts connections; it
// returns the failing listeners' errors otherwise.
func (m *Manager) Healthy() (bool, []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []string
	for name, r := range m.active {
		if e := r.acceptErr.Load(); e != nil {
			errs = append(errs, fmt.Sprintf("listener %q (%s): accept: %s", name, r.bound, *e))
		}
	}
	sort.Strings(errs)
	return len(errs) == 0, errs
}

// Listeners describes the running listeners, sorted by name.
func (m *Manager) Listeners() []Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Info, 0, len(m.active))
	for name, r := range m.active {
		info := Info{Name: name, Address: r.cfg.Load().Address, Bound: r.bound, Error: r.err}
		if e := r.acceptErr.Load(); e != nil {
			info.Error = "accept: " + *e
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Shutdown stops accepting, lets connections finish their current requests
// for up to drain, then closes everything.
func (m *Manager) Shutdown(drain time.Duration) {
	m.mu.Lock()
	for _, r := range m.active {
		r.close()
	}
	m.active = map[string]*running{}
	m.mu.Unlock()
	m.http.Drain()
	done := make(chan struct{})
	go func() { m.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drain):
	}
	m.cancel()
	<-done
}

// removeStaleSocket removes a unix socket left at path by an earlier
// process, as Envoy unlinks a pipe's path before binding; anything but a
// socket is left alone (the bind then fails and says why).
func removeStaleSocket(path string) {
	if strings.HasPrefix(path, "@") {
		return // the abstract namespace has no files
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
}
