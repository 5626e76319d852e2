package broker

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// APIVersion is the version of the OSB API the broker implements.
const APIVersion = "2.17"

// MinAPIVersion is the oldest X-Broker-API-Version accepted: 2.14 added
// what the broker relies on (fetching instances and bindings, asynchronous
// bindings and their last_operation).
const MinAPIVersion = "2.14"

// Auth is how platforms authenticate: HTTP basic authentication (the
// specification's default) or a bearer token. One of them is required.
type Auth struct {
	Username, Password string
	BearerToken        string
}

// LoadAuth reads credentials from files: credentialsFile holds
// "username:password", tokenFile a bearer token. Give exactly one.
func LoadAuth(credentialsFile, tokenFile string) (Auth, error) {
	switch {
	case credentialsFile != "" && tokenFile != "":
		return Auth{}, errors.New("broker: give a credentials file or a token file, not both")
	case credentialsFile != "":
		b, err := os.ReadFile(credentialsFile)
		if err != nil {
			return Auth{}, fmt.Errorf("broker credentials: %w", err)
		}
		user, pass, found := strings.Cut(strings.TrimSpace(string(b)), ":")
		if !found || user == "" || pass == "" {
			return Auth{}, fmt.Errorf("broker credentials %s: expected one line username:password", credentialsFile)
		}
		return Auth{Username: user, Password: pass}, nil
	case tokenFile != "":
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return Auth{}, fmt.Errorf("broker token: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return Auth{}, fmt.Errorf("broker token %s is empty", tokenFile)
		}
		return Auth{BearerToken: tok}, nil
	}
	return Auth{}, errors.New("broker: a credentials file (username:password) or a bearer token file is required")
}

func (a Auth) check(r *http.Request) bool {
	if a.BearerToken != "" {
		tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return found && subtle.ConstantTimeCompare([]byte(tok), []byte(a.BearerToken)) == 1
	}
	user, pass, found := r.BasicAuth()
	if !found {
		return false
	}
	u := subtle.ConstantTimeCompare([]byte(user), []byte(a.Username))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(a.Password))
	return u&p == 1
}

// Handler serves the OSB API, authenticating every request with auth.
func (b *Broker) Handler(auth Auth) http.Handler {
	if auth == (Auth{}) {
		panic("broker: Handler needs credentials")
	}
	mux := http.NewServeMux()
	route := func(pattern string, methods map[string]func(*http.Request, []byte) result) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			h, found := methods[r.Method]
			if !found {
				allow := make([]string, 0, len(methods))
				for m := range methods {
					allow = append(allow, m)
				}
				w.Header().Set("Allow", strings.Join(allow, ", "))
				writeError(w, errorf(http.StatusMethodNotAllowed, codeMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
				return
			}
			var body []byte
			if r.Method == http.MethodPut || r.Method == http.MethodPatch {
				var err error
				body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					writeError(w, errorf(http.StatusRequestEntityTooLarge, codeTooLarge, "the request body exceeds %d bytes", maxBodyBytes))
					return
				} else if err != nil {
					writeError(w, badRequest("reading the request body: %v", err))
					return
				}
			}
			res := h(r, body)
			if res.err != nil {
				writeError(w, res.err)
				return
			}
			writeJSON(w, res.status, res.body)
		})
	}
	ids := func(r *http.Request, names ...string) ([]string, *apiError) {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = r.PathValue(n)
			if err := checkID(n, out[i]); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	withIDs := func(f func(r *http.Request, ids []string, body []byte) result, names ...string) func(*http.Request, []byte) result {
		return func(r *http.Request, body []byte) result {
			v, err := ids(r, names...)
			if err != nil {
				return fail(err)
			}
			return f(r, v, body)
		}
	}
	route("/v2/catalog", map[string]func(*http.Request, []byte) result{
		http.MethodGet: func(*http.Request, []byte) result { return ok(http.StatusOK, b.catalog().json()) },
	})
	route("/v2/service_instances/{instance_id}", map[string]func(*http.Request, []byte) result{
		http.MethodPut:    withIDs(func(r *http.Request, v []string, body []byte) result { return b.provision(r, v[0], body) }, "instance_id"),
		http.MethodGet:    withIDs(func(r *http.Request, v []string, _ []byte) result { return b.getInstance(r, v[0]) }, "instance_id"),
		http.MethodPatch:  withIDs(func(r *http.Request, v []string, body []byte) result { return b.update(r, v[0], body) }, "instance_id"),
		http.MethodDelete: withIDs(func(r *http.Request, v []string, _ []byte) result { return b.deprovision(r, v[0]) }, "instance_id"),
	})
	route("/v2/service_instances/{instance_id}/last_operation", map[string]func(*http.Request, []byte) result{
		http.MethodGet: withIDs(func(r *http.Request, v []string, _ []byte) result { return b.instanceLastOperation(r, v[0]) }, "instance_id"),
	})
	route("/v2/service_instances/{instance_id}/service_bindings/{binding_id}", map[string]func(*http.Request, []byte) result{
		http.MethodPut:    withIDs(func(r *http.Request, v []string, body []byte) result { return b.bind(r, v[0], v[1], body) }, "instance_id", "binding_id"),
		http.MethodGet:    withIDs(func(r *http.Request, v []string, _ []byte) result { return b.getBinding(r, v[0], v[1]) }, "instance_id", "binding_id"),
		http.MethodDelete: withIDs(func(r *http.Request, v []string, _ []byte) result { return b.unbind(r, v[0], v[1]) }, "instance_id", "binding_id"),
	})
	route("/v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation", map[string]func(*http.Request, []byte) result{
		http.MethodGet: withIDs(func(r *http.Request, v []string, _ []byte) result { return b.bindingLastOperation(r, v[0], v[1]) }, "instance_id", "binding_id"),
	})
	route("/mast/v1/certificates", map[string]func(*http.Request, []byte) result{
		http.MethodGet: func(*http.Request, []byte) result { return ok(http.StatusOK, b.certificates()) },
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(http.StatusNotFound, codeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return b.middleware(auth, mux)
}

// middleware authenticates, checks X-Broker-API-Version, logs the
// platform's identity headers and echoes the request identity.
func (b *Broker) middleware(auth Auth, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqID := r.Header.Get("X-Broker-API-Request-Identity")
		if reqID != "" {
			w.Header().Set("X-Broker-API-Request-Identity", reqID)
		}
		rec := &statusRecorder{ResponseWriter: w}
		start := b.now()
		platform, identity := "", ""
		defer func() {
			b.log.Info("osb request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery, "status", rec.status,
				"request_identity", reqID, "originating_platform", platform, "originating_identity", identity,
				"api_version", r.Header.Get("X-Broker-API-Version"), "duration", b.now().Sub(start).Round(time.Microsecond))
		}()
		if !auth.check(r) {
			if auth.BearerToken != "" {
				rec.Header().Set("WWW-Authenticate", `Bearer realm="mast-broker"`)
			} else {
				rec.Header().Set("WWW-Authenticate", `Basic realm="mast-broker"`)
			}
			writeError(rec, errorf(http.StatusUnauthorized, codeUnauthorized, "authentication is required"))
			return
		}
		if err := checkAPIVersion(r.Header.Get("X-Broker-API-Version")); err != nil {
			writeError(rec, err)
			return
		}
		if h := r.Header.Get("X-Broker-API-Originating-Identity"); h != "" {
			var err *apiError
			if platform, identity, err = parseOriginatingIdentity(h); err != nil {
				writeError(rec, err)
				return
			}
		}
		next.ServeHTTP(rec, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// checkAPIVersion accepts MAJOR.MINOR with major 2 and minor at least
// MinAPIVersion's; anything else (or no header) is 412.
func checkAPIVersion(v string) *apiError {
	if v == "" {
		return errorf(http.StatusPreconditionFailed, codePreconditionFailed, "the X-Broker-API-Version header is required; this broker implements %s (at least %s)", APIVersion, MinAPIVersion)
	}
	major, minor, okv := parseVersion(v)
	minMajor, minMinor, _ := parseVersion(MinAPIVersion)
	if !okv || major != minMajor || minor < minMinor {
		return errorf(http.StatusPreconditionFailed, codePreconditionFailed, "X-Broker-API-Version %q is not supported; use %s (2.x with x at least %d)", v, APIVersion, minMinor)
	}
	return nil
}

func parseVersion(v string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(strings.TrimSpace(v), ".")
	if !found {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(a)
	minor, err2 := strconv.Atoi(b)
	return major, minor, err1 == nil && err2 == nil && major >= 0 && minor >= 0
}

// parseOriginatingIdentity decodes "PLATFORM BASE64(JSON object)".
func parseOriginatingIdentity(h string) (platform, identity string, err *apiError) {
	platform, value, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || platform == "" || value == "" {
		return "", "", badRequest("X-Broker-API-Originating-Identity must be \"PLATFORM BASE64-JSON\"")
	}
	raw, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	if derr != nil {
		if raw, derr = base64.RawStdEncoding.DecodeString(strings.TrimSpace(value)); derr != nil {
			return "", "", badRequest("X-Broker-API-Originating-Identity: the value is not base64: %v", derr)
		}
	}
	var obj map[string]any
	if jerr := json.Unmarshal(raw, &obj); jerr != nil || obj == nil {
		return "", "", badRequest("X-Broker-API-Originating-Identity: the value is not a base64-encoded JSON object")
	}
	canon, _ := json.Marshal(obj)
	return platform, string(canon), nil
}

// acceptsIncomplete reads the accepts_incomplete query parameter.
func acceptsIncomplete(r *http.Request) (bool, *apiError) {
	v, present, aerr := optionalQuery(r, "accepts_incomplete")
	if aerr != nil || !present {
		return false, aerr
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, badRequest("accepts_incomplete=%q is not a boolean", v)
	}
	return b, nil
}

// optionalQuery returns a query parameter; present but empty is a 400, as
// the specification says of its query parameters "if present, MUST be a
// non-empty string".
func optionalQuery(r *http.Request, name string) (string, bool, *apiError) {
	q := r.URL.Query()
	if !q.Has(name) {
		return "", false, nil
	}
	v := q.Get(name)
	if v == "" {
		return "", true, badRequest("query parameter %s, when present, must be a non-empty string", name)
	}
	if len(v) > maxIDLength*10 {
		return "", true, badRequest("query parameter %s is too long", name)
	}
	return v, true, nil
}

// hintQuery checks the optional service_id and plan_id hints.
func hintQuery(r *http.Request, service, plan string) (string, string, *apiError) {
	s, _, err := optionalQuery(r, service)
	if err != nil {
		return "", "", err
	}
	p, _, err := optionalQuery(r, plan)
	return s, p, err
}

// requiredIDs reads the service_id and plan_id a DELETE must carry.
func requiredIDs(r *http.Request) (string, string, *apiError) {
	s, sok, err := optionalQuery(r, "service_id")
	if err != nil {
		return "", "", err
	}
	p, pok, err := optionalQuery(r, "plan_id")
	if err != nil {
		return "", "", err
	}
	if !sok || !pok {
		return "", "", badRequest("query parameters service_id and plan_id are required")
	}
	return s, p, nil
}

// certificates lists the client certificates issued (and not expired for
// longer than a day), newest first.
func (b *Broker) certificates() any {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]IssuedCertificate, 0, len(b.st.Certificates))
	for i := len(b.st.Certificates) - 1; i >= 0; i-- {
		out = append(out, *b.st.Certificates[i])
	}
	return map[string]any{"certificates": out}
}
