package attribute

import (
	"errors"
	"fmt"
	"time"

	"github.com/mast-mesh/mast/internal/mixer/api/mixerpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Decode turns compressed attributes into a bag. globalWords is the
// request's global_word_count: the client's dictionary may be an older,
// shorter copy of ours, never a longer one. Every index is checked, so a
// hostile message yields an error, never a panic.
func Decode(ca *mixerpb.CompressedAttributes, d *Dictionary, globalWords int) (MapBag, error) {
	if globalWords > d.Len() {
		return nil, fmt.Errorf("global_word_count %d: this Mixer knows %d global words", globalWords, d.Len())
	}
	word := func(i int32) (string, error) {
		if i >= 0 {
			if int(i) >= globalWords {
				return "", fmt.Errorf("word index %d: beyond the %d global words", i, globalWords)
			}
			w, _ := d.Word(int(i))
			return w, nil
		}
		j := -int(i) - 1
		if j < 0 || j >= len(ca.GetWords()) {
			return "", fmt.Errorf("word index %d: the message has %d words", i, len(ca.GetWords()))
		}
		return ca.GetWords()[j], nil
	}
	bag := MapBag{}
	var errs []error
	put := func(k int32, v any, err error) {
		name, nerr := word(k)
		switch {
		case nerr != nil:
			errs = append(errs, nerr)
		case err != nil:
			errs = append(errs, fmt.Errorf("attribute %q: %w", name, err))
		default:
			if _, dup := bag[name]; dup {
				errs = append(errs, fmt.Errorf("attribute %q: given twice", name))
				return
			}
			bag[name] = v
		}
	}
	for k, v := range ca.GetStrings() {
		s, err := word(v)
		put(k, s, err)
	}
	for k, v := range ca.GetInt64S() {
		put(k, v, nil)
	}
	for k, v := range ca.GetDoubles() {
		put(k, v, nil)
	}
	for k, v := range ca.GetBools() {
		put(k, v, nil)
	}
	for k, v := range ca.GetTimestamps() {
		if err := v.CheckValid(); err != nil {
			put(k, nil, err)
			continue
		}
		put(k, v.AsTime(), nil)
	}
	for k, v := range ca.GetDurations() {
		if err := v.CheckValid(); err != nil {
			put(k, nil, err)
			continue
		}
		put(k, v.AsDuration(), nil)
	}
	for k, v := range ca.GetBytes() {
		put(k, NormalizeIP(v), nil)
	}
	for k, sm := range ca.GetStringMaps() {
		m := make(map[string]string, len(sm.GetEntries()))
		var err error
		for mk, mv := range sm.GetEntries() {
			ks, e1 := word(mk)
			vs, e2 := word(mv)
			if err = errors.Join(e1, e2); err != nil {
				break
			}
			m[ks] = vs
		}
		put(k, m, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return bag, nil
}

// Words numbers words as Mixer's messages do: a global word by its index
// in the dictionary, any other by -1, -2, ... into the message's own list.
type Words struct {
	dict  *Dictionary
	local map[string]int32
	// Local is the message's own word list.
	Local []string
}

// NewWords returns an empty numbering against d.
func NewWords(d *Dictionary) *Words { return &Words{dict: d} }

// Index returns w's number, adding it to Local when it is not global.
func (ws *Words) Index(w string) int32 {
	if i, ok := ws.dict.Index(w); ok {
		return i
	}
	if i, ok := ws.local[w]; ok {
		return i
	}
	if ws.local == nil {
		ws.local = map[string]int32{}
	}
	ws.Local = append(ws.Local, w)
	i := -int32(len(ws.Local))
	ws.local[w] = i
	return i
}

// Encoder compresses bags against the global dictionary.
type Encoder struct {
	dict *Dictionary
}

// NewEncoder returns an encoder using d.
func NewEncoder(d *Dictionary) *Encoder { return &Encoder{dict: d} }

// Ranger is implemented by bags that list their attributes with their
// values in one pass; the encoder then reads each value once instead of
// calling Names, then Get for each.
type Ranger interface {
	Range(f func(name string, v any))
}

type namedValue struct {
	name string
	v    any
}

// Encode compresses a bag. Words not in the global dictionary go into the
// message's own word list.
func (e *Encoder) Encode(b Bag) *mixerpb.CompressedAttributes {
	var buf [40]namedValue
	kvs := buf[:0]
	if r, ok := b.(Ranger); ok {
		r.Range(func(name string, v any) { kvs = append(kvs, namedValue{name, v}) })
	} else {
		for _, name := range b.Names() {
			v, _ := b.Get(name)
			kvs = append(kvs, namedValue{name, v})
		}
	}
	// Each map is made once at its final size.
	var nStr, nI64, nF64, nBool, nBytes, nTS, nDur, nMap int
	for _, kv := range kvs {
		switch kv.v.(type) {
		case string:
			nStr++
		case int64:
			nI64++
		case float64:
			nF64++
		case bool:
			nBool++
		case []byte:
			nBytes++
		case time.Time:
			nTS++
		case time.Duration:
			nDur++
		case map[string]string:
			nMap++
		}
	}
	ca := &mixerpb.CompressedAttributes{}
	if nStr > 0 {
		ca.Strings = make(map[int32]int32, nStr)
	}
	if nI64 > 0 {
		ca.Int64S = make(map[int32]int64, nI64)
	}
	if nF64 > 0 {
		ca.Doubles = make(map[int32]float64, nF64)
	}
	if nBool > 0 {
		ca.Bools = make(map[int32]bool, nBool)
	}
	if nBytes > 0 {
		ca.Bytes = make(map[int32][]byte, nBytes)
	}
	if nTS > 0 {
		ca.Timestamps = make(map[int32]*timestamppb.Timestamp, nTS)
	}
	if nDur > 0 {
		ca.Durations = make(map[int32]*durationpb.Duration, nDur)
	}
	if nMap > 0 {
		ca.StringMaps = make(map[int32]*mixerpb.StringMap, nMap)
	}
	words := Words{dict: e.dict}
	idx := words.Index
	for _, kv := range kvs {
		k := idx(kv.name)
		switch x := kv.v.(type) {
		case string:
			ca.Strings[k] = idx(x)
		case int64:
			ca.Int64S[k] = x
		case float64:
			ca.Doubles[k] = x
		case bool:
			ca.Bools[k] = x
		case []byte:
			ca.Bytes[k] = x
		case time.Time:
			ca.Timestamps[k] = timestamppb.New(x)
		case time.Duration:
			ca.Durations[k] = durationpb.New(x)
		case map[string]string:
			sm := &mixerpb.StringMap{Entries: make(map[int32]int32, len(x))}
			for mk, mv := range x {
				sm.Entries[idx(mk)] = idx(mv)
			}
			ca.StringMaps[k] = sm
		}
	}
	ca.Words = words.Local
	return ca
}
