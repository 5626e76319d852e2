package metrics

import "encoding/binary"

// A series key is its label values, each preceded by its length as a
// uvarint: the standard labels in order, then the number of custom
// dimensions and their values. Building one into a stack buffer and
// looking it up (m[string(k)]) allocates nothing; only a new series keeps
// a copy.

// appendKey appends l's key to b, evaluating its custom dimensions.
func (l *Labels) appendKey(b []byte) []byte {
	for i := range l.Std {
		b = appendValue(b, l.Std[i])
	}
	if l.cfg == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(l.cfg.Custom)))
	for i := range l.cfg.Custom {
		b = appendValue(b, l.cfg.Custom[i].Value.Eval(l.rec, l.local))
	}
	return b
}

func appendValue(b []byte, v string) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// decodedKey is a key's values, slices of the key.
type decodedKey struct {
	std    [NumLabels]string
	custom []string
}

// decodeKey splits a key appendKey built.
func decodeKey(k string, d *decodedKey) {
	next := func() string {
		n, w := binary.Uvarint([]byte(k[:min(len(k), binary.MaxVarintLen64)]))
		if w <= 0 || uint64(len(k)-w) < n {
			k = ""
			return ""
		}
		v := k[w : w+int(n)]
		k = k[w+int(n):]
		return v
	}
	for i := range d.std {
		d.std[i] = next()
	}
	n, w := binary.Uvarint([]byte(k[:min(len(k), binary.MaxVarintLen64)]))
	if w <= 0 {
		n = 0
	} else {
		k = k[w:]
	}
	d.custom = d.custom[:0]
	for ; n > 0 && k != ""; n-- {
		d.custom = append(d.custom, next())
	}
}
