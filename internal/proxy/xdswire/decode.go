package xdswire

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
)

// The decoders follow the generated code's rules, so that they accept and
// reject exactly what it does in the fields they read: the last value of a
// singular field wins, a repeated embedded message (the resource in
// Resource) merges, a field of the wrong wire type is an unknown field and
// skipped, strings must be UTF-8. Fields they do not read are skipped
// without looking inside. Nothing they return aliases b (the resources'
// values are copied), so b may be a reused buffer.

// errUnknown marks a field to skip.
var errUnknown = errors.New("unknown field")

// fields walks b's fields, calling fn for each with its value's bytes
// (after the tag); fn returns how many bytes it consumed, or errUnknown to
// have the field skipped.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) (int, error)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		m, err := fn(num, typ, b)
		if errors.Is(err, errUnknown) {
			m = protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
			}
		} else if err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

// bytesField reads a length-delimited value; a field of another wire type
// is unknown.
func bytesField(typ protowire.Type, v []byte) ([]byte, int, error) {
	if typ != protowire.BytesType {
		return nil, 0, errUnknown
	}
	s, n := protowire.ConsumeBytes(v)
	if n < 0 {
		return nil, 0, protowire.ParseError(n)
	}
	return s, n, nil
}

// stringField reads a UTF-8 string value.
func stringField(name string, typ protowire.Type, v []byte) (string, int, error) {
	s, n, err := bytesField(typ, v)
	if err != nil {
		if errors.Is(err, errUnknown) {
			return "", 0, err
		}
		return "", 0, fmt.Errorf("%s: %w", name, err)
	}
	if !utf8.Valid(s) {
		return "", 0, fmt.Errorf("%s: invalid UTF-8", name)
	}
	return string(s), n, nil
}

// setString reads a string value into *dst; a field of the wrong wire type
// leaves *dst as it was.
func setString(dst *string, name string, typ protowire.Type, v []byte) (int, error) {
	s, n, err := stringField(name, typ, v)
	if err == nil {
		*dst = s
	}
	return n, err
}

// DecodeResponse decodes a DiscoveryResponse.
func DecodeResponse(b []byte) (*Response, error) {
	r := &Response{}
	return r, r.unmarshal(b)
}

func (r *Response) unmarshal(b []byte) error {
	*r = Response{}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) (int, error) {
		var n int
		var err error
		switch num {
		case respVersionInfo:
			n, err = setString(&r.VersionInfo, "version_info", typ, v)
		case respTypeURL:
			n, err = setString(&r.TypeURL, "type_url", typ, v)
		case respNonce:
			n, err = setString(&r.Nonce, "nonce", typ, v)
		case respResources:
			var m []byte
			if m, n, err = bytesField(typ, v); err == nil {
				a := &anypb.Any{}
				if err = decodeAny(a, m); err != nil {
					err = fmt.Errorf("resources[%d]: %w", len(r.Resources), err)
				}
				r.Resources = append(r.Resources, a)
			}
		default:
			return 0, errUnknown
		}
		return n, err
	})
	if err != nil {
		return fmt.Errorf("DiscoveryResponse: %w", err)
	}
	return nil
}

// DecodeDeltaResponse decodes a DeltaDiscoveryResponse.
func DecodeDeltaResponse(b []byte) (*DeltaResponse, error) {
	r := &DeltaResponse{}
	return r, r.unmarshal(b)
}

func (r *DeltaResponse) unmarshal(b []byte) error {
	*r = DeltaResponse{}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) (int, error) {
		var n int
		var err error
		switch num {
		case deltaRespSystemVersionInfo:
			n, err = setString(&r.SystemVersionInfo, "system_version_info", typ, v)
		case deltaRespTypeURL:
			n, err = setString(&r.TypeURL, "type_url", typ, v)
		case deltaRespNonce:
			n, err = setString(&r.Nonce, "nonce", typ, v)
		case deltaRespRemovedResources:
			var s string
			if s, n, err = stringField("removed_resources", typ, v); err == nil {
				r.RemovedResources = append(r.RemovedResources, s)
			}
		case deltaRespResources:
			var m []byte
			if m, n, err = bytesField(typ, v); err == nil {
				res := &Resource{}
				if err = decodeResource(res, m); err != nil {
					err = fmt.Errorf("resources[%d]: %w", len(r.Resources), err)
				}
				r.Resources = append(r.Resources, res)
			}
		default:
			return 0, errUnknown
		}
		return n, err
	})
	if err != nil {
		return fmt.Errorf("DeltaDiscoveryResponse: %w", err)
	}
	return nil
}

func decodeResource(r *Resource, b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte) (int, error) {
		var n int
		var err error
		switch num {
		case resourceName:
			n, err = setString(&r.Name, "name", typ, v)
		case resourceVersion:
			n, err = setString(&r.Version, "version", typ, v)
		case resourceAliases:
			var s string
			if s, n, err = stringField("aliases", typ, v); err == nil {
				r.Aliases = append(r.Aliases, s)
			}
		case resourceResource:
			var m []byte
			if m, n, err = bytesField(typ, v); err == nil {
				if r.Resource == nil {
					r.Resource = &anypb.Any{}
				}
				if err = decodeAny(r.Resource, m); err != nil {
					err = fmt.Errorf("resource: %w", err)
				}
			}
		default:
			return 0, errUnknown
		}
		return n, err
	})
}

// decodeAny merges b into a, copying the value.
func decodeAny(a *anypb.Any, b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte) (int, error) {
		switch num {
		case anyTypeURL:
			s, n, err := stringField("type_url", typ, v)
			if err == nil {
				a.TypeUrl = s
			}
			return n, err
		case anyValue:
			s, n, err := bytesField(typ, v)
			if err == nil {
				a.Value = bytes.Clone(s)
			} else if !errors.Is(err, errUnknown) {
				err = fmt.Errorf("value: %w", err)
			}
			return n, err
		}
		return 0, errUnknown
	})
}

// DecodeRequest decodes a DiscoveryRequest; its node is skipped (the SDS
// server does not read it).
func DecodeRequest(b []byte) (*Request, error) {
	r := &Request{}
	return r, r.unmarshal(b)
}

func (r *Request) unmarshal(b []byte) error {
	*r = Request{}
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) (int, error) {
		var n int
		var err error
		switch num {
		case reqVersionInfo:
			n, err = setString(&r.VersionInfo, "version_info", typ, v)
		case reqTypeURL:
			n, err = setString(&r.TypeURL, "type_url", typ, v)
		case reqResponseNonce:
			n, err = setString(&r.ResponseNonce, "response_nonce", typ, v)
		case reqResourceNames:
			var s string
			if s, n, err = stringField("resource_names", typ, v); err == nil {
				r.ResourceNames = append(r.ResourceNames, s)
			}
		case reqErrorDetail:
			var m []byte
			if m, n, err = bytesField(typ, v); err == nil {
				if r.ErrorDetail == nil {
					r.ErrorDetail = &Status{}
				}
				if err = decodeStatus(r.ErrorDetail, m); err != nil {
					err = fmt.Errorf("error_detail: %w", err)
				}
			}
		default:
			return 0, errUnknown
		}
		return n, err
	})
	if err != nil {
		return fmt.Errorf("DiscoveryRequest: %w", err)
	}
	return nil
}

func decodeStatus(s *Status, b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte) (int, error) {
		switch num {
		case statusCode:
			if typ != protowire.VarintType {
				return 0, errUnknown
			}
			x, n := protowire.ConsumeVarint(v)
			if n < 0 {
				return 0, fmt.Errorf("code: %w", protowire.ParseError(n))
			}
			s.Code = int32(x)
			return n, nil
		case statusMessage:
			m, n, err := stringField("message", typ, v)
			if err == nil {
				s.Message = m
			}
			return n, err
		}
		return 0, errUnknown
	})
}
