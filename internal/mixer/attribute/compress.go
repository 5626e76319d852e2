package attribute

import (
	"errors"
	"fmt"
	"sort"
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
func NewWords(d *Dictionary) *Words { return &Words{dict: d, local: map[string]int32{}} }

// Index returns w's number, adding it to Local when it is not global.
func (ws *Words) Index(w string) int32 {
	if i, ok := ws.dict.Index(w); ok {
		return i
	}
	if i, ok := ws.local[w]; ok {
		return i
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

// Encode compresses a bag. Words not in the global dictionary go into the
// message's own word list.
func (e *Encoder) Encode(b Bag) *mixerpb.CompressedAttributes {
	ca := &mixerpb.CompressedAttributes{}
	words := NewWords(e.dict)
	idx := words.Index
	for _, name := range b.Names() {
		v, _ := b.Get(name)
		k := idx(name)
		switch x := v.(type) {
		case string:
			if ca.Strings == nil {
				ca.Strings = map[int32]int32{}
			}
			ca.Strings[k] = idx(x)
		case int64:
			if ca.Int64S == nil {
				ca.Int64S = map[int32]int64{}
			}
			ca.Int64S[k] = x
		case float64:
			if ca.Doubles == nil {
				ca.Doubles = map[int32]float64{}
			}
			ca.Doubles[k] = x
		case bool:
			if ca.Bools == nil {
				ca.Bools = map[int32]bool{}
			}
			ca.Bools[k] = x
		case []byte:
			if ca.Bytes == nil {
				ca.Bytes = map[int32][]byte{}
			}
			ca.Bytes[k] = x
		case time.Time:
			if ca.Timestamps == nil {
				ca.Timestamps = map[int32]*timestamppb.Timestamp{}
			}
			ca.Timestamps[k] = timestamppb.New(x)
		case time.Duration:
			if ca.Durations == nil {
				ca.Durations = map[int32]*durationpb.Duration{}
			}
			ca.Durations[k] = durationpb.New(x)
		case map[string]string:
			if ca.StringMaps == nil {
				ca.StringMaps = map[int32]*mixerpb.StringMap{}
			}
			keys := make([]string, 0, len(x))
			for mk := range x {
				keys = append(keys, mk)
			}
			sort.Strings(keys)
			sm := &mixerpb.StringMap{Entries: make(map[int32]int32, len(x))}
			for _, mk := range keys {
				sm.Entries[idx(mk)] = idx(x[mk])
			}
			ca.StringMaps[k] = sm
		}
	}
	ca.Words = words.Local
	return ca
}
