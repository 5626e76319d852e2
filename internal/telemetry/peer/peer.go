// Package peer is Istio's metadata exchange over HTTP headers: a proxy sends
// its workload metadata in x-envoy-peer-metadata (base64 of a serialized
// google.protobuf.Struct with Istio's node metadata keys) and its node id in
// x-envoy-peer-metadata-id, on requests it sends and on responses it
// returns; the other side decodes them to fill the peer's metric labels and
// removes them before the application sees them.
package peer

import (
	"encoding/base64"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mast-mesh/mast/internal/telemetry"
)

// Istio's header names.
const (
	HeaderMetadata   = "x-envoy-peer-metadata"
	HeaderMetadataID = "x-envoy-peer-metadata-id"
)

// Istio's labels for canonical names.
const (
	labelCanonicalName     = "service.istio.io/canonical-name"
	labelCanonicalRevision = "service.istio.io/canonical-revision"
)

// MaxHeaderLen bounds the metadata header a peer may send.
const MaxHeaderLen = 8192

// FromNode builds a Peer from node metadata fields as Istio's agent sets
// them (NAME, NAMESPACE, WORKLOAD_NAME, CLUSTER_ID, SERVICE_ACCOUNT,
// LABELS), with Istio's defaults: the workload is WORKLOAD_NAME or else
// NAME, the canonical service the canonical-name label, the app label or
// else the workload, the canonical revision the canonical-revision label,
// the version label or else "latest".
func FromNode(id string, md *structpb.Struct) telemetry.Peer {
	f := md.GetFields()
	s := func(k string) string { return f[k].GetStringValue() }
	lbl := f["LABELS"].GetStructValue().GetFields()
	l := func(k string) string { return lbl[k].GetStringValue() }
	p := telemetry.Peer{
		ID: id, Name: s("NAME"), Namespace: s("NAMESPACE"), Workload: s("WORKLOAD_NAME"), Cluster: s("CLUSTER_ID"),
		ServiceAccount: s("SERVICE_ACCOUNT"), App: l("app"), Version: l("version"),
		CanonicalService: l(labelCanonicalName), CanonicalRevision: l(labelCanonicalRevision),
	}
	if p.Workload == "" {
		p.Workload = p.Name
	}
	if p.CanonicalService == "" {
		p.CanonicalService = p.App
	}
	if p.CanonicalService == "" {
		p.CanonicalService = p.Workload
	}
	if p.CanonicalRevision == "" {
		p.CanonicalRevision = p.Version
	}
	if p.CanonicalRevision == "" {
		p.CanonicalRevision = "latest"
	}
	return p
}

// Encode renders p as the x-envoy-peer-metadata header value.
func Encode(p *telemetry.Peer) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(nodeStruct(p))
	if err != nil {
		panic(err) // only strings and maps of strings: cannot fail
	}
	return base64.StdEncoding.EncodeToString(b)
}

// nodeStruct is p as Istio's node metadata keys.
func nodeStruct(p *telemetry.Peer) *structpb.Struct {
	labels := map[string]any{}
	if p.App != "" {
		labels["app"] = p.App
	}
	if p.Version != "" {
		labels["version"] = p.Version
	}
	if p.CanonicalService != "" {
		labels[labelCanonicalName] = p.CanonicalService
	}
	if p.CanonicalRevision != "" {
		labels[labelCanonicalRevision] = p.CanonicalRevision
	}
	m := map[string]any{"LABELS": labels}
	for k, v := range map[string]string{"NAME": p.Name, "NAMESPACE": p.Namespace, "WORKLOAD_NAME": p.Workload,
		"CLUSTER_ID": p.Cluster, "SERVICE_ACCOUNT": p.ServiceAccount} {
		if v != "" {
			m[k] = v
		}
	}
	st, err := structpb.NewStruct(m)
	if err != nil {
		panic(err) // only strings and maps of strings: cannot fail
	}
	return st
}

// Decode parses an x-envoy-peer-metadata value (and the -id value).
func Decode(value, id string) (*telemetry.Peer, error) {
	if len(value) > MaxHeaderLen {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", HeaderMetadata, len(value), MaxHeaderLen)
	}
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", HeaderMetadata, err)
	}
	var st structpb.Struct
	if err := proto.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", HeaderMetadata, err)
	}
	p := FromNode(id, &st)
	return &p, nil
}

// Cache decodes header values once: peers send the same value on every
// request. It holds at most its limit of entries, then decodes uncached.
type Cache struct {
	limit int
	mu    sync.RWMutex
	m     map[cacheKey]entry
}

type cacheKey struct{ value, id string }

// entry is a cached peer and the cache's own copy of its key.
type entry struct {
	key cacheKey
	p   *telemetry.Peer
}

// NewCache returns a cache of at most limit decoded values.
func NewCache(limit int) *Cache {
	return &Cache{limit: limit, m: map[cacheKey]entry{}}
}

// Get returns the peer for a header value, nil when it does not decode.
// The result is shared: callers must not modify it.
func (c *Cache) Get(value, id string) *telemetry.Peer {
	e, _ := c.get(value, id)
	return e.p
}

// get is Get, and the entry the cache holds for the values (cached false
// when the cache is full and did not keep them).
func (c *Cache) get(value, id string) (e entry, cached bool) {
	if value == "" {
		return entry{}, false
	}
	k := cacheKey{value, id}
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return e, true
	}
	p, err := Decode(value, id)
	if err != nil {
		p = nil
	}
	e = entry{key: cacheKey{string([]byte(value)), string([]byte(id))}, p: p}
	c.mu.Lock()
	if cached = len(c.m) < c.limit; cached {
		c.m[e.key] = e
	}
	c.mu.Unlock()
	return e, cached
}

// Memo remembers the last values GetMemo resolved from the cache and their
// peer, with the cache's own copies of the values or the last equal ones
// it was asked for. A connection's peer
// sends the same ~450-byte value on every request: comparing it with the
// memo costs a fraction of hashing it for the map and taking the lock.
// The zero Memo is empty; a Memo is not safe for concurrent use.
type Memo struct{ e entry }

// GetMemo is Get, answered from m when value and id are the ones m holds;
// a peer the cache keeps replaces m's.
func (c *Cache) GetMemo(value, id string, m *Memo) *telemetry.Peer {
	if m.e.p != nil && value == m.e.key.value && id == m.e.key.id {
		// The caller's strings replace the equal ones m held: a reader
		// that keeps a connection's unchanged fields hands out the same
		// strings again, and comparing a string with itself is one
		// pointer comparison. m then holds the caller's strings, which
		// must stay unchanged (Go strings do).
		m.e.key = cacheKey{value, id}
		return m.e.p
	}
	e, cached := c.get(value, id)
	if cached && e.p != nil {
		m.e = e
	}
	return e.p
}
