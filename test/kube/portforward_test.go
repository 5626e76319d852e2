package kube_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"

	"github.com/mast-mesh/mast/test/netns"
)

// portForward plays the kubelet's port-forward API (protocol
// portforward.k8s.io over SPDY), which the API server's pods/portforward
// subresource reaches whether the client spoke WebSockets or SPDY to it.
// The client opens an error stream and a data stream per connection, with
// the same requestID and the pod's port in their headers; the kubelet dials
// that port inside the pod's network namespace (its loopback included, as
// a container runtime's port-forward does; the node's own for a pod on the
// host network, pod nil) and copies both ways, writing a failure to the
// error stream.
func portForward(t *testing.T, w http.ResponseWriter, r *http.Request, pod *netns.Namespace) {
	if _, err := httpstream.Handshake(r, w, []string{"portforward.k8s.io"}); err != nil {
		return
	}
	streams := make(chan httpstream.Stream, 8)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(s httpstream.Stream, _ <-chan struct{}) error {
		streams <- s
		return nil
	})
	if conn == nil {
		return
	}
	defer conn.Close()
	conn.SetIdleTimeout(5 * time.Minute)
	type pair struct{ data, errs httpstream.Stream }
	pairs := map[string]*pair{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-conn.CloseChan():
			return
		case s := <-streams:
			id := s.Headers().Get(corev1.PortForwardRequestIDHeader)
			p := pairs[id]
			if p == nil {
				p = &pair{}
				pairs[id] = p
			}
			switch s.Headers().Get(corev1.StreamType) {
			case corev1.StreamTypeData:
				p.data = s
			case corev1.StreamTypeError:
				p.errs = s
			default:
				s.Reset()
				continue
			}
			if p.data == nil || p.errs == nil {
				continue
			}
			delete(pairs, id)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.RemoveStreams(p.data, p.errs)
				defer p.errs.Close()
				defer p.data.Close()
				port, err := strconv.Atoi(p.data.Headers().Get(corev1.PortHeader))
				if err == nil {
					err = copyTo(r.Context(), pod, port, p.data)
				}
				if err != nil {
					fmt.Fprintf(p.errs, "error forwarding port %d: %v", port, err)
					t.Logf("kubelet port-forward: %v", err)
				}
			}()
		}
	}
}

// copyTo connects to 127.0.0.1:port in the pod's namespace and copies the
// stream both ways: the client's end of its stream half-closes the
// connection, and the connection's end ends the copy.
func copyTo(ctx context.Context, pod *netns.Namespace, port int, stream io.ReadWriter) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var c net.Conn
	var err error
	if pod == nil {
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	} else {
		c, err = pod.Dial(ctx, "tcp", addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		_, _ = io.Copy(c, stream)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	_, err = io.Copy(stream, c)
	return err
}
