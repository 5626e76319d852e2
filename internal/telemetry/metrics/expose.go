package metrics

import (
	"bufio"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// snapshot is one series' values at write time.
type snapshot struct {
	v [4]uint64 // counter values (HTTP: requests; TCP: opened, closed, sent, received)
	h [3]histSnap
}

type histSnap struct {
	count, sum uint64
	buckets    [len(DurationBuckets)]uint64
}

func (h *histSnap) add(o *histSnap) {
	h.count += o.count
	h.sum += o.sum
	for i := range h.buckets {
		h.buckets[i] += o.buckets[i]
	}
}

func snapHist(h *histogram) histSnap {
	s := histSnap{count: h.count.Load(), sum: h.sum.Load()}
	for i := range h.buckets {
		s.buckets[i] = h.buckets[i].Load()
	}
	return s
}

// Write writes every enabled metric in Prometheus's text exposition
// format (version 0.0.4), series sorted, plus the overflow counter. Each
// series is shaped by the configuration of its reporter side as it is now.
func (r *Registry) Write(w io.Writer) error {
	var cfgs [numSides]*Config
	for s := range cfgs {
		cfgs[s] = r.cfg[s].Load()
	}
	r.mu.RLock()
	httpSnap := make(map[string]snapshot, len(r.http))
	for l, s := range r.http {
		httpSnap[l] = snapshot{v: [4]uint64{s.requests.Load()}, h: [3]histSnap{snapHist(&s.duration), snapHist(&s.req), snapHist(&s.res)}}
	}
	tcpSnap := make(map[string]snapshot, len(r.tcp))
	for l, s := range r.tcp {
		tcpSnap[l] = snapshot{v: [4]uint64{s.opened.Load(), s.closed.Load(), s.sent.Load(), s.received.Load()}}
	}
	msgSnap := make(map[string]snapshot, len(r.msg))
	for l, s := range r.msg {
		msgSnap[l] = snapshot{v: [4]uint64{s.request.Load(), s.response.Load()}}
	}
	r.mu.RUnlock()

	bw := bufio.NewWriter(w)
	for m := Metric(0); m < NumMetrics; m++ {
		src := httpSnap
		switch {
		case m.TCP():
			src = tcpSnap
		case m.Messages():
			src = msgSnap
		}
		if series := aggregate(&cfgs, m, src); len(series) > 0 {
			writeMetric(bw, m, series)
		}
	}
	bw.WriteString("# TYPE istio_metric_series_overflow_total counter\nistio_metric_series_overflow_total ")
	bw.WriteString(strconv.FormatUint(r.overflow.Load(), 10))
	bw.WriteByte('\n')
	return bw.Flush()
}

type rendered struct {
	labels string // rendered label pairs without braces
	s      snapshot
}

// sideOf is the side a series was reported on.
func sideOf(std *[NumLabels]string) Side {
	if std[Reporter] == "destination" {
		return Server
	}
	return Client
}

// omits reports whether metric m never carries standard label l.
func omits(m Metric, l Label) bool {
	return m.TCP() && tcpOmits(l) || m.Messages() && msgOmits(l)
}

// aggregate renders the series of metric m in the shape their side's
// configuration gives (without the labels it removes, with its custom
// dimensions) and folds those that render alike.
func aggregate(cfgs *[numSides]*Config, m Metric, src map[string]snapshot) []rendered {
	folded := make(map[string]*snapshot, len(src))
	var b strings.Builder
	var d decodedKey
	for k, s := range src {
		decodeKey(k, &d)
		cfg := cfgs[sideOf(&d.std)]
		if cfg.Disabled[m] {
			continue
		}
		b.Reset()
		for i := range NumLabels {
			if cfg.Removed[m][i] || omits(m, i) {
				continue
			}
			writePair(&b, labelNames[i], d.std[i])
		}
		for i := range cfg.Custom {
			if !cfg.Custom[i].In[m] {
				continue
			}
			v := ""
			if i < len(d.custom) {
				v = d.custom[i]
			}
			writePair(&b, cfg.Custom[i].Name, or(v))
		}
		k := b.String()
		if f := folded[k]; f != nil {
			for i := range f.v {
				f.v[i] += s.v[i]
			}
			for i := range f.h {
				f.h[i].add(&s.h[i])
			}
			continue
		}
		c := s
		folded[k] = &c
	}
	out := make([]rendered, 0, len(folded))
	for k, s := range folded {
		out = append(out, rendered{labels: k, s: *s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].labels < out[j].labels })
	return out
}

func writePair(b *strings.Builder, name, value string) {
	if b.Len() > 0 {
		b.WriteByte(',')
	}
	b.WriteString(name)
	b.WriteString(`="`)
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

func writeMetric(w *bufio.Writer, m Metric, series []rendered) {
	name := metricInfo[m].name
	w.WriteString("# TYPE " + name + " " + metricInfo[m].typ + "\n")
	for _, s := range series {
		switch m {
		case RequestCount, TCPOpenedConnections, GRPCRequestMessages:
			writeSample(w, name, s.labels, "", strconv.FormatUint(s.s.v[0], 10))
		case GRPCResponseMessages:
			writeSample(w, name, s.labels, "", strconv.FormatUint(s.s.v[1], 10))
		case TCPClosedConnections:
			writeSample(w, name, s.labels, "", strconv.FormatUint(s.s.v[1], 10))
		case TCPSentBytes:
			writeSample(w, name, s.labels, "", strconv.FormatUint(s.s.v[2], 10))
		case TCPReceivedBytes:
			writeSample(w, name, s.labels, "", strconv.FormatUint(s.s.v[3], 10))
		case RequestDuration:
			writeHistogram(w, name, s.labels, DurationBuckets[:], &s.s.h[0], float64(s.s.h[0].sum)/float64(time.Millisecond))
		case RequestSize:
			writeHistogram(w, name, s.labels, SizeBuckets[:], &s.s.h[1], float64(s.s.h[1].sum))
		case ResponseSize:
			writeHistogram(w, name, s.labels, SizeBuckets[:], &s.s.h[2], float64(s.s.h[2].sum))
		}
	}
}

func writeSample(w *bufio.Writer, name, labels, extra, value string) {
	w.WriteString(name)
	if labels != "" || extra != "" {
		w.WriteByte('{')
		w.WriteString(labels)
		if extra != "" {
			if labels != "" {
				w.WriteByte(',')
			}
			w.WriteString(extra)
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(value)
	w.WriteByte('\n')
}

func writeHistogram(w *bufio.Writer, name, labels string, bounds []float64, h *histSnap, sum float64) {
	var cum uint64
	for i, b := range bounds {
		cum += h.buckets[i]
		writeSample(w, name+"_bucket", labels, `le="`+strconv.FormatFloat(b, 'f', -1, 64)+`"`, strconv.FormatUint(cum, 10))
	}
	writeSample(w, name+"_bucket", labels, `le="+Inf"`, strconv.FormatUint(h.count, 10))
	writeSample(w, name+"_sum", labels, "", strconv.FormatFloat(sum, 'g', -1, 64))
	writeSample(w, name+"_count", labels, "", strconv.FormatUint(h.count, 10))
}
