// Package dnsstub is a DNS server on loopback for tests: it answers A
// queries for the names it is given, records every question, and never
// answers the query types it is told to ignore, the way an unreachable or
// filtering nameserver makes a client wait.
package dnsstub

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Server is a running stub. Use its Addr as the authority of a gRPC
// target ("dns://ADDR/name:port").
type Server struct {
	Addr string

	conn    net.PacketConn
	hosts   map[string]netip.Addr
	ignore  map[dnsmessage.Type]bool
	mu      sync.Mutex
	queries []dnsmessage.Question
}

// Start serves DNS over UDP on a free loopback port until the test ends.
// hosts maps fully qualified names without the trailing dot to IPv4
// addresses; questions of the ignored types get no answer at all.
func Start(t testing.TB, hosts map[string]netip.Addr, ignore ...dnsmessage.Type) *Server {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: conn.LocalAddr().String(), conn: conn, hosts: hosts, ignore: map[dnsmessage.Type]bool{}}
	for _, ty := range ignore {
		s.ignore[ty] = true
	}
	done := make(chan struct{})
	go func() { defer close(done); s.serve() }()
	t.Cleanup(func() { conn.Close(); <-done })
	return s
}

// Queries returns the questions asked so far, in order.
func (s *Server) Queries() []dnsmessage.Question {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]dnsmessage.Question(nil), s.queries...)
}

// Asked counts the questions of type ty.
func (s *Server) Asked(ty dnsmessage.Type) int {
	n := 0
	for _, q := range s.Queries() {
		if q.Type == ty {
			n++
		}
	}
	return n
}

func (s *Server) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		s.mu.Lock()
		s.queries = append(s.queries, q)
		s.mu.Unlock()
		if s.ignore[q.Type] {
			continue
		}
		if out, err := s.answer(h.ID, q); err == nil {
			_, _ = s.conn.WriteTo(out, from)
		}
	}
}

func (s *Server) answer(id uint16, q dnsmessage.Question) ([]byte, error) {
	addr, known := s.hosts[strings.TrimSuffix(q.Name.String(), ".")]
	rcode := dnsmessage.RCodeSuccess
	if !known {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, Response: true, Authoritative: true, RCode: rcode})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if known && q.Type == dnsmessage.TypeA {
		if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5},
			dnsmessage.AResource{A: addr.As4()}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
