package mixer

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/mixer/api/clientpb"
	"github.com/mast-mesh/mast/internal/proxy/filter"
	"github.com/mast-mesh/mast/internal/proxy/rpc"
)

// TCPTypeURL is the typed_config of Istio 1.4's Mixer network filter (its
// name is Name, "mixer", as the HTTP filter's).
const TCPTypeURL = "type.googleapis.com/istio.mixer.v1.config.client.TcpClientConfig"

// DefaultReportInterval and MinReportInterval are Istio's: a long
// connection is reported every 10 s unless report_interval says otherwise,
// never more often than every second.
const (
	DefaultReportInterval = 10 * time.Second
	MinReportInterval     = time.Second
)

// TCP is Istio 1.4's Mixer network filter: a connection is checked when it
// opens (source, destination and connection attributes; refused, it is
// closed) and reported when it opens, every report_interval while it
// lasts and when it closes, with the bytes received and sent since the
// previous Report and in total, its duration and the event
// (connection.event open, continue, close).
type TCP struct {
	*client
	checkOn, reportOn bool
	static            map[string]any
	quotas            map[string]int64
	interval          time.Duration

	conns sync.Map // *filter.Conn -> *tcpConn, connections being reported
	ids   atomic.Uint64
	idPfx string
}

// tcpConn is one reported connection's state.
type tcpConn struct {
	attrs connAttrs // id, and the totals last reported

	mu     sync.Mutex
	closed bool
	timer  *time.Timer
}

var (
	_ filter.NetworkFilter = (*TCP)(nil)
	_ filter.CloseFilter   = (*TCP)(nil)
)

// NewTCP parses a TcpClientConfig; fields mast-proxy does not carry out
// are errors naming them.
func NewTCP(_ string, a *anypb.Any) (filter.NetworkFilter, error) {
	var c clientpb.TcpClientConfig
	if err := a.UnmarshalTo(&c); err != nil {
		return nil, fmt.Errorf("typed_config: %v", err)
	}
	cl, err := newClient(c.GetTransport())
	if err != nil {
		return nil, err
	}
	static, err := attrs(c.GetMixerAttributes(), "mixer_attributes")
	if err != nil {
		return nil, err
	}
	var quotas map[string]int64
	if qs := c.GetConnectionQuotaSpec(); qs != nil {
		if quotas, err = quotaCharges([]*clientpb.QuotaSpec{qs}, "connection_quota_spec"); err != nil {
			return nil, err
		}
	}
	interval := DefaultReportInterval
	if c.GetReportInterval() != nil {
		interval = max(c.GetReportInterval().AsDuration(), MinReportInterval)
	}
	return &TCP{client: cl, checkOn: !c.GetDisableCheckCalls(), reportOn: !c.GetDisableReportCalls(), static: static,
		quotas: quotas, interval: interval, idPfx: strconv.FormatInt(time.Now().UnixNano(), 36) + "-"}, nil
}

// bag is a connection's attributes; r describes only the connection.
func (f *TCP) bag(c *filter.Conn, a *connAttrs, now time.Time) *reqBag {
	r := &filter.Request{Conn: c, RemoteIP: c.Remote.Addr(), Services: c.Services}
	return &reqBag{r: r, static: f.static, now: now, conn: a}
}

// OnConnect implements filter.NetworkFilter: the Check, then the open
// Report.
func (f *TCP) OnConnect(c *filter.Conn) filter.Status {
	now := time.Now()
	st := &tcpConn{attrs: connAttrs{id: f.idPfx + strconv.FormatUint(f.ids.Add(1), 10)}}
	var dial func(string) (rpc.Conn, error)
	if c.Services != nil {
		dial = c.Services.RPC
	}
	if f.checkOn {
		a := st.attrs
		code, msg, err := f.check(context.Background(), dial, f.bag(c, &a, now), f.quotas, a.id, now)
		switch {
		case err != nil && !f.failOpen:
			f.logf(c, "mixer unreachable: connection closed", "error", err)
			return filter.Stop
		case err != nil:
			f.logf(c, "mixer unreachable: connection let through (fail open)", "error", err)
		case code != rpc.OK:
			f.logf(c, "connection refused by the mixer", "status", statusName(code), "message", msg)
			return filter.Stop
		}
	}
	if f.reportOn && dial != nil {
		f.conns.Store(c, st)
		f.reportConn(c, st, "open", now)
		st.mu.Lock()
		st.timer = time.AfterFunc(f.interval, func() { f.periodic(c, st) })
		st.mu.Unlock()
	}
	return filter.Continue
}

func (f *TCP) logf(c *filter.Conn, msg string, args ...any) {
	if c.Services != nil && c.Services.Logger != nil {
		c.Services.Logger.Debug(msg, append(args, "remote", c.Remote.String())...)
	}
}

// periodic reports a connection that lasts (connection.event continue).
func (f *TCP) periodic(c *filter.Conn, st *tcpConn) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return
	}
	f.reportLocked(c, st, "continue", time.Now())
	st.timer.Reset(f.interval)
}

// OnClose implements filter.CloseFilter: the close Report.
func (f *TCP) OnClose(c *filter.Conn) {
	v, ok := f.conns.LoadAndDelete(c)
	if !ok {
		return
	}
	st := v.(*tcpConn)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closed = true
	if st.timer != nil {
		st.timer.Stop()
	}
	f.reportLocked(c, st, "close", time.Now())
}

func (f *TCP) reportConn(c *filter.Conn, st *tcpConn, event string, now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	f.reportLocked(c, st, event, now)
}

// reportLocked reports the bytes since the last Report and in total.
func (f *TCP) reportLocked(c *filter.Conn, st *tcpConn, event string, now time.Time) {
	a := &st.attrs
	recv, sent := c.Received.Load(), c.Sent.Load()
	a.event = event
	a.received, a.sent = recv-a.receivedTotal, sent-a.sentTotal
	a.receivedTotal, a.sentTotal = recv, sent
	start := c.Start
	if start.IsZero() {
		start = now
	}
	a.duration = now.Sub(start)
	f.report(f.bag(c, a, now), c.Services) // encoded now
}
