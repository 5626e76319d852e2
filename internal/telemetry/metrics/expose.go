package metrics

import (
	"bufio"
	"io"
	"math"
	"slices"
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
func (r *Registry) Write(w io.Writer) error { return r.WriteMatching(w, nil) }

// WriteMatching is Write restricted to the metric families keep keeps
// (nil: all, as Write); the others are not aggregated at all.
func (r *Registry) WriteMatching(w io.Writer, keep func(family string) bool) error {
	var kept [NumMetrics]bool
	var needHTTP, needTCP, needMsg bool
	for m := Metric(0); m < NumMetrics; m++ {
		kept[m] = keep == nil || keep(m.Name())
		needTCP = needTCP || kept[m] && m.TCP()
		needMsg = needMsg || kept[m] && m.Messages()
		needHTTP = needHTTP || kept[m] && !m.TCP() && !m.Messages()
	}
	var cfgs [numSides]*Config
	for s := range cfgs {
		cfgs[s] = r.cfg[s].Load()
	}
	var httpSnap, tcpSnap, msgSnap map[string]snapshot
	r.mu.RLock()
	if needHTTP {
		httpSnap = make(map[string]snapshot, len(r.http))
		for l, s := range r.http {
			httpSnap[l] = snapshot{v: [4]uint64{s.requests.Load()}, h: [3]histSnap{snapHist(&s.duration), snapHist(&s.req), snapHist(&s.res)}}
		}
	}
	if needTCP {
		tcpSnap = make(map[string]snapshot, len(r.tcp))
		for l, s := range r.tcp {
			tcpSnap[l] = snapshot{v: [4]uint64{s.opened.Load(), s.closed.Load(), s.sent.Load(), s.received.Load()}}
		}
	}
	if needMsg {
		msgSnap = make(map[string]snapshot, len(r.msg))
		for l, s := range r.msg {
			msgSnap[l] = snapshot{v: [4]uint64{s.request.Load(), s.response.Load()}}
		}
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
		if !kept[m] {
			continue
		}
		if series := aggregate(&cfgs, m, src); len(series) > 0 {
			writeMetric(bw, m, series)
		}
	}
	if keep == nil || keep(overflowName) {
		bw.WriteString("# TYPE " + overflowName + " counter\n" + overflowName + " ")
		bw.Write(strconv.AppendUint(bw.AvailableBuffer(), r.overflow.Load(), 10))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// overflowName is the family that counts series refused beyond the cap.
const overflowName = "istio_metric_series_overflow_total"

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
	var b []byte
	var d decodedKey
	for k, s := range src {
		decodeKey(k, &d)
		cfg := cfgs[sideOf(&d.std)]
		if cfg.Disabled[m] {
			continue
		}
		b = b[:0]
		for i := range NumLabels {
			if cfg.Removed[m][i] || omits(m, i) {
				continue
			}
			b = appendPair(b, labelNames[i], d.std[i])
		}
		for i := range cfg.Custom {
			if !cfg.Custom[i].In[m] {
				continue
			}
			v := ""
			if i < len(d.custom) {
				v = d.custom[i]
			}
			b = appendPair(b, cfg.Custom[i].Name, or(v))
		}
		if f := folded[string(b)]; f != nil {
			for i := range f.v {
				f.v[i] += s.v[i]
			}
			for i := range f.h {
				f.h[i].add(&s.h[i])
			}
			continue
		}
		c := s
		folded[string(b)] = &c
	}
	out := make([]rendered, 0, len(folded))
	for k, s := range folded {
		out = append(out, rendered{labels: k, s: *s})
	}
	slices.SortFunc(out, func(a, b rendered) int { return strings.Compare(a.labels, b.labels) })
	return out
}

func appendPair(b []byte, name, value string) []byte {
	if len(b) > 0 {
		b = append(b, ',')
	}
	b = append(append(b, name...), `="`...)
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func writeMetric(w *bufio.Writer, m Metric, series []rendered) {
	name := metricInfo[m].name
	w.WriteString("# TYPE ")
	w.WriteString(name)
	w.WriteByte(' ')
	w.WriteString(metricInfo[m].typ)
	w.WriteByte('\n')
	for _, s := range series {
		switch m {
		case RequestCount, TCPOpenedConnections, GRPCRequestMessages:
			writeUint(w, name, "", s.labels, s.s.v[0])
		case GRPCResponseMessages, TCPClosedConnections:
			writeUint(w, name, "", s.labels, s.s.v[1])
		case TCPSentBytes:
			writeUint(w, name, "", s.labels, s.s.v[2])
		case TCPReceivedBytes:
			writeUint(w, name, "", s.labels, s.s.v[3])
		case RequestDuration:
			writeHistogram(w, name, s.labels, DurationBuckets[:], &s.s.h[0], float64(s.s.h[0].sum)/float64(time.Millisecond))
		case RequestSize:
			writeHistogram(w, name, s.labels, SizeBuckets[:], &s.s.h[1], float64(s.s.h[1].sum))
		case ResponseSize:
			writeHistogram(w, name, s.labels, SizeBuckets[:], &s.s.h[2], float64(s.s.h[2].sum))
		}
	}
}

// The samples are written in pieces, numbers formatted in the writer's
// free buffer (AvailableBuffer): a scrape costs no allocation per sample.

// writeName writes a sample's name and labels up to the space before its
// value; le is a histogram bucket's bound (absent when NaN).
func writeName(w *bufio.Writer, name, suffix, labels string, le float64) {
	w.WriteString(name)
	w.WriteString(suffix)
	isLE := le == le
	if labels == "" && !isLE {
		w.WriteByte(' ')
		return
	}
	w.WriteByte('{')
	w.WriteString(labels)
	if isLE {
		if labels != "" {
			w.WriteByte(',')
		}
		w.WriteString(`le="`)
		if math.IsInf(le, 1) {
			w.WriteString("+Inf")
		} else {
			w.Write(strconv.AppendFloat(w.AvailableBuffer(), le, 'f', -1, 64))
		}
		w.WriteByte('"')
	}
	w.WriteString("} ")
}

func writeUint(w *bufio.Writer, name, suffix, labels string, v uint64) {
	writeName(w, name, suffix, labels, math.NaN())
	w.Write(strconv.AppendUint(w.AvailableBuffer(), v, 10))
	w.WriteByte('\n')
}

func writeHistogram(w *bufio.Writer, name, labels string, bounds []float64, h *histSnap, sum float64) {
	var cum uint64
	for i, b := range bounds {
		cum += h.buckets[i]
		writeName(w, name, "_bucket", labels, b)
		w.Write(strconv.AppendUint(w.AvailableBuffer(), cum, 10))
		w.WriteByte('\n')
	}
	writeName(w, name, "_bucket", labels, math.Inf(1))
	w.Write(strconv.AppendUint(w.AvailableBuffer(), h.count, 10))
	w.WriteByte('\n')
	writeName(w, name, "_sum", labels, math.NaN())
	w.Write(strconv.AppendFloat(w.AvailableBuffer(), sum, 'g', -1, 64))
	w.WriteByte('\n')
	writeUint(w, name, "_count", labels, h.count)
}
