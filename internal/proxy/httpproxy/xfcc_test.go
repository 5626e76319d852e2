package httpproxy

import (
	"testing"

	"github.com/mast-mesh/mast/internal/proxy/headers"
	"github.com/mast-mesh/mast/internal/proxy/xdsparse"
)

func TestApplyXFCC(t *testing.T) {
	peer := &tlsPeer{hash: "abc", uris: []string{"spiffe://cluster.local/ns/default/sa/productpage"}, dns: []string{"pp"}}
	details := xdsparse.ClientCertDetails{Subject: true, URI: true, DNS: true}
	const mine = `Hash=abc;Subject="";URI=spiffe://cluster.local/ns/default/sa/productpage;DNS=pp`
	cases := []struct {
		name string
		mode xdsparse.ForwardClientCert
		in   string // incoming header, "" for none
		peer *tlsPeer
		want string // "" for absent
	}{
		{"sanitize strips a forged header", xdsparse.FCCSanitize, "URI=spiffe://evil", peer, ""},
		{"append forward on mTLS", xdsparse.FCCAppendForward, "", peer, mine},
		{"append forward appends", xdsparse.FCCAppendForward, "Hash=zzz", peer, "Hash=zzz," + mine},
		{"append forward on plaintext strips a forged header", xdsparse.FCCAppendForward, "Hash=zzz;URI=spiffe://cluster.local/ns/x/sa/admin", nil, ""},
		{"forward only on plaintext strips", xdsparse.FCCForwardOnly, "Hash=zzz", nil, ""},
		{"sanitize on plaintext strips", xdsparse.FCCSanitize, "Hash=zzz", nil, ""},
		{"always forward only keeps on plaintext", xdsparse.FCCAlwaysForwardOnly, "Hash=zzz", nil, "Hash=zzz"},
		{"sanitize set replaces", xdsparse.FCCSanitizeSet, "URI=spiffe://evil", peer, mine},
		{"sanitize set on plaintext strips", xdsparse.FCCSanitizeSet, "URI=spiffe://evil", nil, ""},
		{"forward only keeps", xdsparse.FCCForwardOnly, "Hash=zzz", peer, "Hash=zzz"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h headers.List
			if tc.in != "" {
				h.Add(xfccHeader, tc.in)
			}
			applyXFCC(&h, &xdsparse.HTTPManager{ForwardClientCert: tc.mode, ClientCertDetails: details}, tc.peer)
			got, _ := h.Get(xfccHeader)
			if got != tc.want || h.Count(xfccHeader) > 1 {
				t.Fatalf("x-forwarded-client-cert %q (%d), want %q", got, h.Count(xfccHeader), tc.want)
			}
		})
	}
}

// TestXFCCElementBuiltOncePerConnection: a connection's requests reuse its
// XFCC element (no allocation per request), and details the element was
// not built for get their own.
func TestXFCCElementBuiltOncePerConnection(t *testing.T) {
	peer := &tlsPeer{hash: "abc", subject: `CN=a"b`, uris: []string{"spiffe://cluster.local/ns/default/sa/productpage"}, dns: []string{"pp"}}
	all := xdsparse.ClientCertDetails{Subject: true, URI: true, DNS: true}
	uri := xdsparse.ClientCertDetails{URI: true}
	const wantAll = `Hash=abc;Subject="CN=a\"b";URI=spiffe://cluster.local/ns/default/sa/productpage;DNS=pp`
	const wantURI = `Hash=abc;URI=spiffe://cluster.local/ns/default/sa/productpage`
	for i, tc := range []struct {
		d    xdsparse.ClientCertDetails
		want string
	}{{all, wantAll}, {all, wantAll}, {uri, wantURI}, {all, wantAll}} {
		if got := peer.value(tc.d); got != tc.want {
			t.Fatalf("call %d: value(%+v) = %q, want %q", i, tc.d, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { peer.value(all) }); n != 0 {
		t.Errorf("value allocates %.0f times per request, want 0", n)
	}
}
