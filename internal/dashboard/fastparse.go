package dashboard

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/mast-mesh/mast/internal/telemetry/metrics"
)

// parseStatsFast reads page when it has only the shape mast-proxy's
// filtered page has: TYPE lines of the two families parseStats reads
// (counter, histogram), and their samples as name{k="v",...} value, label
// values printable ASCII with only \\, \" and \n escaped, no timestamps,
// counts as plain integers. It reads only the labels keyOf keeps and
// allocates only for a new series. ok is false for anything else, and then
// parseStats (prometheus/common's parser) decides; when ok, the result is
// parseStats's (FuzzParseStatsFast).
func parseStatsFast(page string) (out map[seriesKey]*series, ok bool) {
	out = map[seriesKey]*series{}
	var typed [2]bool           // requestsTotal, requestDuration declared
	inHist := false             // the histogram's lines began: no counter may follow
	groups := map[string]bool{} // histogram label sets (sorted) seen
	var cur struct {
		raw     string // the group's labels as written, without le
		key     seriesKey
		bounds  []float64
		counts  []float64
		count   float64
		started bool
	}
	flush := func() bool {
		if !cur.started {
			return true
		}
		cur.started = false
		var b [numBuckets]float64
		i := 0
		for j, ub := range cur.bounds {
			if math.IsInf(ub, 1) {
				continue
			}
			if i >= numBuckets || ub != metrics.DurationBuckets[i] {
				return true
			}
			b[i] = cur.counts[j]
			i++
		}
		if i != numBuckets {
			return true
		}
		s := fastGet(out, cur.key)
		if s == nil {
			return false
		}
		for k := range b {
			s.buckets[k] += b[k]
		}
		s.hcount += cur.count
		s.hasHist = true
		return true
	}
	for len(page) > 0 {
		nl := strings.IndexByte(page, '\n')
		if nl < 0 {
			return nil, false
		}
		line := page[:nl]
		page = page[nl+1:]
		if strings.HasPrefix(line, "#") {
			switch line {
			case "# TYPE " + requestsTotal + " counter":
				if typed[0] {
					return nil, false
				}
				typed[0] = true
			case "# TYPE " + requestDuration + " histogram":
				if typed[1] {
					return nil, false
				}
				typed[1] = true
			default:
				return nil, false
			}
			continue
		}
		brace := strings.IndexByte(line, '{')
		if brace < 0 {
			return nil, false
		}
		name, rest := line[:brace], line[brace+1:]
		if name == requestsTotal {
			if !typed[0] || inHist {
				return nil, false
			}
			labels, value, ok := splitSample(rest)
			if !ok || !uniqueNames(labels) {
				return nil, false
			}
			v, ok := plainCount(value)
			if !ok {
				return nil, false
			}
			k, ok := fastKey(labels)
			if !ok {
				return nil, false
			}
			s := fastGet(out, k)
			if s == nil {
				return nil, false
			}
			s.requests += v
			continue
		}
		suffix, isHist := strings.CutPrefix(name, requestDuration)
		if !isHist || !typed[1] {
			return nil, false
		}
		labels, value, ok := splitSample(rest)
		if !ok {
			return nil, false
		}
		le := ""
		if suffix == "_bucket" {
			i := strings.LastIndex(labels, `le="`)
			if i < 0 || len(labels) < i+5 || !strings.HasSuffix(labels, `"`) || i > 0 && labels[i-1] != ',' {
				return nil, false
			}
			le = labels[i+4 : len(labels)-1]
			labels = strings.TrimSuffix(labels[:i], ",")
		} else if suffix != "_count" && suffix != "_sum" {
			return nil, false
		}
		if strings.Contains(labels, `le="`) || labels == "" {
			return nil, false
		}
		if !cur.started || labels != cur.raw {
			if !flush() {
				return nil, false
			}
			k, ok := fastKey(labels)
			if !ok || !uniqueNames(labels) {
				return nil, false
			}
			set := sortedSet(labels)
			if groups[set] {
				return nil, false
			}
			groups[set] = true
			cur.raw, cur.key, cur.bounds, cur.counts, cur.count, cur.started = labels, k, cur.bounds[:0], cur.counts[:0], 0, true
		}
		inHist = true
		switch suffix {
		case "_bucket":
			ub, ok := plainBound(le)
			v, ok2 := plainCount(value)
			if !ok || !ok2 {
				return nil, false
			}
			cur.bounds, cur.counts = append(cur.bounds, ub), append(cur.counts, v)
		case "_count":
			v, ok := plainCount(value)
			if !ok {
				return nil, false
			}
			cur.count = v
		case "_sum":
			if _, ok := plainFloat(value); !ok {
				return nil, false
			}
		}
	}
	if !flush() {
		return nil, false
	}
	return out, true
}

// fastGet returns k's series, creating it with k's strings copied out of
// the page; nil beyond maxSeriesPerProxy (parseStats then says so).
func fastGet(out map[seriesKey]*series, k seriesKey) *series {
	if s := out[k]; s != nil {
		return s
	}
	if len(out) >= maxSeriesPerProxy {
		return nil
	}
	k = seriesKey{strings.Clone(k.reporter), strings.Clone(k.srcNS), strings.Clone(k.srcWL), strings.Clone(k.dstService),
		strings.Clone(k.dstSvcName), strings.Clone(k.dstSvcNS), strings.Clone(k.dstNS), strings.Clone(k.dstWL),
		strings.Clone(k.code), strings.Clone(k.security)}
	s := &series{}
	out[k] = s
	return s
}

// splitSample splits `k="v",...} value` into the labels and the value.
func splitSample(rest string) (labels, value string, ok bool) {
	end := strings.LastIndex(rest, "} ")
	if end < 0 {
		return "", "", false
	}
	return rest[:end], rest[end+2:], true
}

// eachLabel calls f with each of labels' names and raw (escaped) values;
// false when labels is not name="value" pairs joined by commas with legacy
// names and printable-ASCII values.
func eachLabel(labels string, f func(name, raw string)) bool {
	for labels != "" {
		eq := strings.Index(labels, `="`)
		if eq <= 0 || !legacyName(labels[:eq]) {
			return false
		}
		name := labels[:eq]
		i := eq + 2
		for ; i < len(labels) && labels[i] != '"'; i++ {
			c := labels[i]
			if c < 0x20 || c >= 0x7f {
				return false
			}
			if c == '\\' {
				i++
				if i >= len(labels) || labels[i] != '\\' && labels[i] != '"' && labels[i] != 'n' {
					return false
				}
			}
		}
		if i >= len(labels) {
			return false
		}
		f(name, labels[eq+2:i])
		labels = labels[i+1:]
		if labels != "" {
			if labels[0] != ',' || len(labels) == 1 {
				return false
			}
			labels = labels[1:]
		}
	}
	return true
}

func legacyName(s string) bool {
	if strings.HasPrefix(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

func unescape(raw string) string {
	if !strings.Contains(raw, `\`) {
		return raw
	}
	return strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\n`, "\n").Replace(raw)
}

// fastKey is keyOf of the labels as written.
func fastKey(labels string) (seriesKey, bool) {
	var k seriesKey
	ok := eachLabel(labels, func(name, raw string) { k.set(name, unescape(raw)) })
	return k, ok
}

// uniqueNames reports whether no label name repeats.
func uniqueNames(labels string) bool {
	var names []string
	eachLabel(labels, func(name, _ string) { names = append(names, name) })
	slices.Sort(names)
	return len(slices.Compact(names)) == len(names)
}

// sortedSet is the label set as one string, independent of order.
func sortedSet(labels string) string {
	var pairs []string
	eachLabel(labels, func(name, raw string) { pairs = append(pairs, name+"\x00"+unescape(raw)) })
	slices.Sort(pairs)
	return strings.Join(pairs, "\x01")
}

// plainCount reads a non-negative integer of at most 15 digits (exact as
// a float, as prometheus/common's uint64 conversion keeps it).
func plainCount(s string) (float64, bool) {
	if s == "" || len(s) > 15 {
		return 0, false
	}
	n := 0.0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + float64(s[i]-'0')
	}
	return n, true
}

// plainBound reads a bucket bound as mast-proxy writes it: digits with an
// optional point, or +Inf.
func plainBound(s string) (float64, bool) {
	if s == "+Inf" {
		return math.Inf(1), true
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// plainFloat reads a finite decimal float (digits, point, exponent).
func plainFloat(s string) (float64, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' {
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil && !math.IsInf(v, 0)
}
