package xdsparse

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// EDS resources are the proxy's highest-volume xDS type (every endpoint
// change of every service pushes them), so they are decoded here straight
// from the wire into an EndpointSet with protowire, without building
// go-control-plane's generated ClusterLoadAssignment tree (whose decoding
// allocates a message per endpoint, address and wrapper, and whose first
// use initialises the protobuf runtime's tables for every type it reaches).
//
// The decoder keeps the generated path's behaviour, which
// TestDecodeEndpointsMatchesGenerated and FuzzDecodeEndpoints check against
// go-control-plane's types: proto3 semantics (the last value of a scalar
// wins, a singular message seen twice is merged, a oneof keeps its last
// member, a map entry's key replaces an earlier one, a field of a known
// number with another wire type is an unknown field, unknown fields are
// skipped), UTF-8 checked in every string, field numbers in range, and the
// same NACK texts: the set fields clusterRules does not name are refused by
// path, sorted, as checkFields words them. One deliberate difference: the
// contents of a field that is refused anyway are only checked to be well
// formed on the wire, not decoded, so a malformed string inside, say, a
// health_check_config is reported as that unsupported field, not as a
// decode error.

// Field numbers of the messages decoded here (envoy/config/endpoint/v3,
// envoy/config/core/v3 and google/protobuf).
const (
	claClusterName, claEndpoints, claPolicy, claNamedEndpoints = 1, 2, 4, 5

	policyDropOverloads, policyOverprovisioning, policyStaleAfter, policyWeightedPriorityHealth = 2, 3, 4, 6

	lleLocality, lleLbEndpoints, lleWeight, llePriority, lleProximity = 1, 2, 3, 5, 6
	lleLoadBalancerEndpoints, lleLedsConfig, lleMetadata              = 7, 8, 9

	localityRegion, localityZone, localitySubZone = 1, 2, 3

	lbeEndpoint, lbeHealthStatus, lbeMetadata, lbeWeight, lbeEndpointName = 1, 2, 3, 4, 5

	epAddress, epHealthCheckConfig, epHostname, epAdditionalAddresses, epObservabilityName = 1, 2, 3, 4, 5

	addrSocket, addrPipe, addrInternal = 1, 2, 3

	saProtocol, saAddress, saPortValue, saNamedPort, saResolverName, saIPv4Compat, saNetNS = 1, 2, 3, 4, 5, 6, 7

	mdFilterMetadata, mdTypedFilterMetadata = 1, 2
	structFields                            = 1
	valueNull, valueNumber, valueStr        = 1, 2, 3
	valueBool, valueStruct, valueList       = 4, 5, 6
	listValues                              = 1
	anyTypeURL, anyValue                    = 1, 2
	mapKey, mapValue                        = 1, 2
	wrapperValue                            = 1
)

// HealthStatus values (envoy.config.core.v3.HealthStatus) the proxy sends
// traffic to: UNKNOWN, HEALTHY and DEGRADED.
const (
	healthUnknown, healthHealthy, healthDegraded = 0, 1, 5
)

// errWire is a message that is not valid protobuf wire format.
var errWire = errors.New("invalid wire format")

// wireField is one field of an encoded message: its number and wire type,
// and its value (a varint or fixed number in num, bytes in b).
type wireField struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// eachField calls fn for every field of the encoded message b, in order.
// Groups (unknown to every message decoded here) are checked and skipped.
func eachField(b []byte, fn func(f wireField) error) error {
	for len(b) > 0 {
		tag, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return errWire
		}
		b = b[n:]
		num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
		if tag>>3 < uint64(protowire.MinValidNumber) || tag>>3 > uint64(protowire.MaxValidNumber) {
			return fmt.Errorf("invalid field number %d", tag>>3)
		}
		f := wireField{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.Fixed64Type:
			f.v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		case protowire.StartGroupType:
			n = protowire.ConsumeFieldValue(num, typ, b)
		default: // an end group without a start, or a reserved wire type
			return errWire
		}
		if n < 0 {
			return errWire
		}
		b = b[n:]
		if typ == protowire.StartGroupType {
			continue
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// str returns a string field's value; proto3 strings must be UTF-8.
func (f wireField) text(name string) (string, error) {
	if err := f.utf8(name); err != nil {
		return "", err
	}
	return string(f.b), nil
}

// utf8 checks a string field the decoder does not keep.
func (f wireField) utf8(name string) error {
	if !utf8.Valid(f.b) {
		return fmt.Errorf("%s: invalid UTF-8", name)
	}
	return nil
}

// fieldSet records which fields of one message, of those the proxy does
// not take, are set as protoreflect's Range sees them: a scalar when not
// zero, a message, list or map when present, a oneof member when chosen.
type fieldSet []string

func (s *fieldSet) mark(name string, set bool) {
	*s = remove(*s, name)
	if set {
		*s = append(*s, name)
	}
}

// choose marks name as its oneof's member, unsetting the others.
func (s *fieldSet) choose(name string, oneof ...string) {
	for _, o := range oneof {
		*s = remove(*s, o)
	}
	*s = append(*s, name)
}

func remove(s fieldSet, name string) fieldSet {
	for i, n := range s {
		if n == name {
			return append(s[:i:i], s[i+1:]...)
		}
	}
	return s
}

// paths appends the set fields' paths; prefix is only built when some are.
func (s fieldSet) paths(prefix func() string, out *[]string) {
	if len(s) == 0 {
		return
	}
	p := prefix()
	for _, n := range s {
		*out = append(*out, p+n)
	}
}

// Kinds of the fields unsupported records, for what counts as set.
const (
	kindMessage = iota // also a list element or map entry
	kindString
	kindBool
	kindEnum
)

// unsupported records a set field the proxy does not take: its bytes, if
// any, are only checked to be well formed (done by eachField); a string's
// must be UTF-8. The caller has checked f's wire type.
func (s *fieldSet) unsupported(f wireField, name string, kind int) error {
	switch kind {
	case kindString:
		if err := f.utf8(name); err != nil {
			return err
		}
		s.mark(name, len(f.b) > 0)
	case kindBool:
		s.mark(name, f.v != 0)
	case kindEnum:
		s.mark(name, int32(f.v) != 0)
	default:
		s.mark(name, true)
	}
	return nil
}

type claWire struct {
	name       string
	localities []localityWire
	policy     *policyWire
	bad        fieldSet
}

type policyWire struct {
	overprovisioning optUint32
	bad              fieldSet
}

// optUint32 is a google.protobuf.UInt32Value field: set when present.
type optUint32 struct {
	v   uint32
	set bool
}

type localityWire struct {
	hasLocality bool
	locality    [3][]byte // region, zone, sub_zone (checked UTF-8)
	weight      optUint32
	priority    uint32
	lbes        []lbEndpointWire
	bad         fieldSet
}

type lbEndpointWire struct {
	hasEndpoint bool // the host_identifier is endpoint
	endpoint    endpointWire
	health      int32
	hasTLS      bool     // filter_metadata has envoy.transport_socket_match
	tls         []kvPair // its entries in order, string values ("" for others)
	weight      optUint32
	bad         fieldSet
}

type kvPair struct{ k, v []byte }

type endpointWire struct {
	hasAddress bool
	address    addressWire
	bad        fieldSet
}

type addressWire struct {
	hasSocket bool // the address oneof is socket_address
	socket    socketWire
	bad       fieldSet
}

type socketWire struct {
	address   []byte    // checked UTF-8
	portValue optUint32 // set when the port_specifier is port_value
	bad       fieldSet
}

// DecodeEndpoints decodes and parses an encoded ClusterLoadAssignment, as
// an EDS response carries it. It returns the cluster name whenever the
// message could be decoded, so that a refused assignment keeps its
// previous version.
func DecodeEndpoints(b []byte) (string, *EndpointSet, error) {
	var c claWire
	if err := c.decode(b); err != nil {
		return "", nil, fmt.Errorf("cluster load assignment: decode: %w", err)
	}
	if c.name == "" {
		return "", nil, fmt.Errorf("cluster load assignment: cluster_name is empty")
	}
	es, err := c.endpointSet()
	if err != nil {
		return c.name, nil, fmt.Errorf("cluster load assignment %q: %w", c.name, err)
	}
	return c.name, es, nil
}

// decodeEndpointSet parses an encoded ClusterLoadAssignment whose wire
// format is known to be valid (a Cluster's inline load_assignment).
func decodeEndpointSet(b []byte) (*EndpointSet, error) {
	var c claWire
	if err := c.decode(b); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return c.endpointSet()
}

func (c *claWire) decode(b []byte) error {
	return eachField(b, func(f wireField) error {
		if f.typ != protowire.BytesType {
			return nil // no field of ClusterLoadAssignment is a number
		}
		var err error
		switch f.num {
		case claClusterName:
			c.name, err = f.text("cluster_name")
		case claEndpoints:
			c.localities = append(c.localities, localityWire{})
			err = c.localities[len(c.localities)-1].decode(f.b)
		case claPolicy:
			if c.policy == nil {
				c.policy = &policyWire{}
			}
			err = c.policy.decode(f.b)
		case claNamedEndpoints:
			err = c.bad.unsupported(f, "named_endpoints", kindMessage)
			if err == nil {
				err = mapKeyUTF8(f.b, "named_endpoints")
			}
		}
		return err
	})
}

// mapKeyUTF8 checks a map<string, …> entry's key.
func mapKeyUTF8(entry []byte, name string) error {
	return eachField(entry, func(f wireField) error {
		if f.num == mapKey && f.typ == protowire.BytesType {
			return f.utf8(name + " key")
		}
		return nil
	})
}

func (p *policyWire) decode(b []byte) error {
	return eachField(b, func(f wireField) error {
		switch {
		case f.num == policyOverprovisioning && f.typ == protowire.BytesType:
			return p.overprovisioning.decode(f.b)
		case f.num == policyDropOverloads && f.typ == protowire.BytesType:
			return p.bad.unsupported(f, "drop_overloads", kindMessage)
		case f.num == policyStaleAfter && f.typ == protowire.BytesType:
			return p.bad.unsupported(f, "endpoint_stale_after", kindMessage)
		case f.num == policyWeightedPriorityHealth && f.typ == protowire.VarintType:
			return p.bad.unsupported(f, "weighted_priority_health", kindBool)
		}
		return nil
	})
}

// decode merges an encoded google.protobuf.UInt32Value.
func (o *optUint32) decode(b []byte) error {
	o.set = true
	return eachField(b, func(f wireField) error {
		if f.num == wrapperValue && f.typ == protowire.VarintType {
			o.v = uint32(f.v)
		}
		return nil
	})
}

func (l *localityWire) decode(b []byte) error {
	return eachField(b, func(f wireField) error {
		if f.typ == protowire.VarintType {
			if f.num == llePriority {
				l.priority = uint32(f.v)
			}
			return nil
		}
		if f.typ != protowire.BytesType {
			return nil
		}
		switch f.num {
		case lleLocality:
			l.hasLocality = true
			return eachField(f.b, func(f wireField) error {
				if f.typ != protowire.BytesType || f.num < localityRegion || f.num > localitySubZone {
					return nil
				}
				l.locality[f.num-1] = f.b
				return f.utf8([...]string{"region", "zone", "sub_zone"}[f.num-1])
			})
		case lleLbEndpoints:
			l.lbes = append(l.lbes, lbEndpointWire{})
			return l.lbes[len(l.lbes)-1].decode(f.b)
		case lleWeight:
			return l.weight.decode(f.b)
		case lleProximity:
			return l.bad.unsupported(f, "proximity", kindMessage)
		case lleMetadata:
			return l.bad.unsupported(f, "metadata", kindMessage)
		case lleLoadBalancerEndpoints:
			l.bad.choose("load_balancer_endpoints", "leds_cluster_locality_config")
		case lleLedsConfig:
			l.bad.choose("leds_cluster_locality_config", "load_balancer_endpoints")
		}
		return nil
	})
}

func (e *lbEndpointWire) decode(b []byte) error {
	return eachField(b, func(f wireField) error {
		switch {
		case f.num == lbeHealthStatus && f.typ == protowire.VarintType:
			e.health = int32(f.v)
		case f.num == lbeEndpoint && f.typ == protowire.BytesType:
			e.bad.mark("endpoint_name", false)
			e.hasEndpoint = true
			return e.endpoint.decode(f.b)
		case f.num == lbeEndpointName && f.typ == protowire.BytesType:
			if err := f.utf8("endpoint_name"); err != nil {
				return err
			}
			e.hasEndpoint, e.endpoint = false, endpointWire{}
			e.bad.choose("endpoint_name")
		case f.num == lbeWeight && f.typ == protowire.BytesType:
			return e.weight.decode(f.b)
		case f.num == lbeMetadata && f.typ == protowire.BytesType:
			return e.decodeMetadata(f.b)
		}
		return nil
	})
}

// decodeMetadata merges an encoded envoy.config.core.v3.Metadata (cosmetic
// but for the envoy.transport_socket_match entries, which the proxy reads as
// strings), checking all of it.
func (e *lbEndpointWire) decodeMetadata(b []byte) error {
	return eachField(b, func(f wireField) error {
		if f.typ != protowire.BytesType || (f.num != mdFilterMetadata && f.num != mdTypedFilterMetadata) {
			return nil
		}
		typed := f.num == mdTypedFilterMetadata
		var key, value []byte
		err := eachField(f.b, func(kv wireField) error {
			if kv.typ != protowire.BytesType {
				return nil
			}
			var err error
			switch kv.num {
			case mapKey:
				key, err = kv.b, kv.utf8("metadata key")
			case mapValue:
				value = concat(value, kv.b)
				if typed {
					err = checkAny(kv.b)
				} else {
					err = checkStruct(kv.b)
				}
			}
			return err
		})
		if err != nil || typed || string(key) != TransportSocketMatchKey {
			return err
		}
		e.hasTLS, e.tls = true, e.tls[:0] // a map entry replaces the earlier one
		return eachField(value, func(sf wireField) error {
			if sf.num != structFields || sf.typ != protowire.BytesType {
				return nil
			}
			var k, v []byte
			err := eachField(sf.b, func(kv wireField) error {
				switch {
				case kv.num == mapKey && kv.typ == protowire.BytesType:
					k = kv.b
				case kv.num == mapValue && kv.typ == protowire.BytesType:
					v = concat(v, kv.b)
				}
				return nil
			})
			e.tls = append(e.tls, kvPair{k, valueString(v)})
			return err
		})
	})
}

// concat appends a message value's encoding to an earlier one of the same
// field (a message seen twice merges, which on the wire is concatenation),
// never writing into the input.
func concat(prev, b []byte) []byte {
	if prev == nil {
		return b
	}
	return append(prev[:len(prev):len(prev)], b...)
}

// valueString returns a checked google.protobuf.Value's string_value, empty
// when its kind is another.
func valueString(b []byte) []byte {
	var s []byte
	eachField(b, func(f wireField) error {
		switch f.num {
		case valueStr:
			if f.typ == protowire.BytesType {
				s = f.b
			}
		case valueNull, valueBool:
			if f.typ == protowire.VarintType {
				s = nil
			}
		case valueNumber:
			if f.typ == protowire.Fixed64Type {
				s = nil
			}
		case valueStruct, valueList:
			if f.typ == protowire.BytesType {
				s = nil
			}
		}
		return nil
	})
	return s
}

// checkStruct checks an encoded google.protobuf.Struct: wire format and
// UTF-8 of every key and string, at any depth.
func checkStruct(b []byte) error {
	return eachField(b, func(f wireField) error {
		if f.num != structFields || f.typ != protowire.BytesType {
			return nil
		}
		return eachField(f.b, func(kv wireField) error {
			if kv.typ != protowire.BytesType {
				return nil
			}
			switch kv.num {
			case mapKey:
				return kv.utf8("struct key")
			case mapValue:
				return checkValue(kv.b)
			}
			return nil
		})
	})
}

func checkValue(b []byte) error {
	return eachField(b, func(f wireField) error {
		if f.typ != protowire.BytesType {
			return nil
		}
		switch f.num {
		case valueStr:
			return f.utf8("string_value")
		case valueStruct:
			return checkStruct(f.b)
		case valueList:
			return eachField(f.b, func(lf wireField) error {
				if lf.num == listValues && lf.typ == protowire.BytesType {
					return checkValue(lf.b)
				}
				return nil
			})
		}
		return nil
	})
}

// checkAny checks an encoded google.protobuf.Any's type_url.
func checkAny(b []byte) error {
	return eachField(b, func(f wireField) error {
		if f.num == anyTypeURL && f.typ == protowire.BytesType {
			return f.utf8("type_url")
		}
		return nil
	})
}

func (e *endpointWire) decode(b []byte) error {
	return eachField(b, func(f wireField) error {
		if f.typ != protowire.BytesType {
			return nil
		}
		switch f.num {
		case epAddress:
			e.hasAddress = true
			return e.address.decode(f.b)
		case epHostname: // cosmetic
			return f.utf8("hostname")
		case epHealthCheckConfig:
			return e.bad.unsupported(f, "health_check_config", kindMessage)
		case epAdditionalAddresses:
			return e.bad.unsupported(f, "additional_addresses", kindMessage)
		case epObservabilityName:
			return e.bad.unsupported(f, "observability_name", kindString)
		}
		return nil
	})
}

func (a *addressWire) decode(b []byte) error {
	return eachField(b, func(f wireField) error {
		if f.typ != protowire.BytesType {
			return nil
		}
		switch f.num {
		case addrSocket:
			a.bad.mark("pipe", false)
			a.bad.mark("envoy_internal_address", false)
			a.hasSocket = true
			return a.socket.decode(f.b)
		case addrPipe:
			a.hasSocket, a.socket = false, socketWire{}
			a.bad.choose("pipe", "envoy_internal_address")
		case addrInternal:
			a.hasSocket, a.socket = false, socketWire{}
			a.bad.choose("envoy_internal_address", "pipe")
		}
		return nil
	})
}

func (s *socketWire) decode(b []byte) error {
	return eachField(b, func(f wireField) error {
		switch {
		case f.num == saAddress && f.typ == protowire.BytesType:
			s.address = f.b
			return f.utf8("address")
		case f.num == saPortValue && f.typ == protowire.VarintType:
			s.portValue = optUint32{v: uint32(f.v), set: true}
			s.bad.mark("named_port", false)
		case f.num == saNamedPort && f.typ == protowire.BytesType:
			if err := f.utf8("named_port"); err != nil {
				return err
			}
			s.portValue = optUint32{}
			s.bad.choose("named_port")
		case f.num == saProtocol && f.typ == protowire.VarintType:
			return s.bad.unsupported(f, "protocol", kindEnum)
		case f.num == saIPv4Compat && f.typ == protowire.VarintType:
			return s.bad.unsupported(f, "ipv4_compat", kindBool)
		case f.num == saResolverName && f.typ == protowire.BytesType:
			return s.bad.unsupported(f, "resolver_name", kindString)
		case f.num == saNetNS && f.typ == protowire.BytesType:
			return s.bad.unsupported(f, "network_namespace_filepath", kindString)
		}
		return nil
	})
}

// unsupportedPaths lists the set fields clusterRules does not name, as
// checkFields does: by path, without descending into them.
func (c *claWire) unsupportedPaths() []string {
	var out []string
	c.bad.paths(func() string { return "" }, &out)
	if c.policy != nil {
		c.policy.bad.paths(func() string { return "policy." }, &out)
	}
	for i := range c.localities {
		l := &c.localities[i]
		lp := func() string { return "endpoints[" + strconv.Itoa(i) + "]." }
		l.bad.paths(lp, &out)
		for j := range l.lbes {
			e := &l.lbes[j]
			ep := func() string { return lp() + "lb_endpoints[" + strconv.Itoa(j) + "]." }
			e.bad.paths(ep, &out)
			if !e.hasEndpoint {
				continue
			}
			e.endpoint.bad.paths(func() string { return ep() + "endpoint." }, &out)
			if a := &e.endpoint.address; e.endpoint.hasAddress {
				a.bad.paths(func() string { return ep() + "endpoint.address." }, &out)
				if a.hasSocket {
					a.socket.bad.paths(func() string { return ep() + "endpoint.address.socket_address." }, &out)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// endpointSet validates the decoded assignment and builds its EndpointSet.
func (c *claWire) endpointSet() (*EndpointSet, error) {
	if bad := c.unsupportedPaths(); len(bad) > 0 {
		return nil, fmt.Errorf("not supported by mast-proxy: %s", strings.Join(bad, ", "))
	}
	es := &EndpointSet{Name: c.name, Overprovisioning: DefaultOverprovisioning}
	if c.policy != nil && c.policy.overprovisioning.set {
		if c.policy.overprovisioning.v == 0 {
			return nil, fmt.Errorf("policy.overprovisioning_factor: 0 would send no traffic")
		}
		es.Overprovisioning = c.policy.overprovisioning.v
	}
	if len(c.localities) > 0 {
		es.Localities = make([]LocalityGroup, 0, len(c.localities))
	}
	for i := range c.localities {
		l := &c.localities[i]
		g := LocalityGroup{Priority: l.priority, Weight: l.weight.v}
		if l.hasLocality {
			g.Locality = intern(string(l.locality[0]) + "/" + string(l.locality[1]) + "/" + string(l.locality[2]))
		}
		if len(l.lbes) > 0 {
			g.Endpoints = make([]Endpoint, 0, len(l.lbes))
		}
		for j := range l.lbes {
			le := &l.lbes[j]
			sa := &le.endpoint.address.socket
			if !le.hasEndpoint || !le.endpoint.hasAddress || !le.endpoint.address.hasSocket {
				return nil, fmt.Errorf("endpoints[%d].lb_endpoints[%d]: only socket addresses are supported", i, j)
			}
			if !sa.portValue.set || sa.portValue.v == 0 || sa.portValue.v > 65535 {
				return nil, fmt.Errorf("endpoints[%d].lb_endpoints[%d]: port_value missing or out of range", i, j)
			}
			if len(sa.address) == 0 {
				return nil, fmt.Errorf("endpoints[%d].lb_endpoints[%d]: address is empty", i, j)
			}
			e := Endpoint{Address: joinHostPort(sa.address, sa.portValue.v), Weight: 1, Locality: g.Locality}
			if le.hasTLS {
				e.TLSMatch = makeMetadataPairs(le.tls)
			}
			if le.weight.set && le.weight.v > 0 {
				e.Weight = le.weight.v
			}
			switch le.health {
			case healthUnknown, healthHealthy, healthDegraded:
				e.Healthy = true
			}
			g.Endpoints = append(g.Endpoints, e)
		}
		es.Localities = append(es.Localities, g)
	}
	return es, nil
}

// joinHostPort is net.JoinHostPort of an address's bytes, in one
// allocation.
func joinHostPort(host []byte, port uint32) string {
	var sb strings.Builder
	sb.Grow(len(host) + 8)
	if bytes.IndexByte(host, ':') >= 0 {
		sb.WriteByte('[')
		sb.Write(host)
		sb.WriteByte(']')
	} else {
		sb.Write(host)
	}
	sb.WriteByte(':')
	var num [10]byte
	sb.Write(strconv.AppendUint(num[:0], uint64(port), 10))
	return sb.String()
}
