package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/mast-mesh/mast/samples/bookinfo/app/productpage"
	"github.com/mast-mesh/mast/samples/bookinfo/app/reviews"
)

// runConfig is everything the command line and environment decide.
type runConfig struct {
	Service         string // productpage, details, reviews or ratings
	Version         string
	Addr            string
	Instance        string
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
	ProductPage     productpage.Config // when Service is productpage
	Reviews         reviews.Config     // when Service is reviews
}

// parseConfig reads the flags in args (without the program name) over the
// defaults Istio's Bookinfo derives from its environment variables, read
// through getenv: SERVICES_DOMAIN, DETAILS_HOSTNAME, REVIEWS_HOSTNAME,
// RATINGS_HOSTNAME, RATINGS_SERVICE_PORT, CLUSTER_NAME, STAR_COLOR and
// ENABLE_RATINGS. Flags win over the environment.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (runConfig, error) {
	var c runConfig
	fs := flag.NewFlagSet("bookinfo", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.Service, "service", "", "the service to run: productpage, details, reviews or ratings (required)")
	fs.StringVar(&c.Version, "version", "v1", "the service version: v1 for every service, v1, v2 or v3 for reviews")
	fs.StringVar(&c.Addr, "addr", ":9080", "the address to listen on (host:port; port 0 picks a free port, logged at start)")
	fs.StringVar(&c.Instance, "instance", "", `the instance name reviews reports as "podname" (default SERVICE-VERSION)`)
	detailsURL := fs.String("details-url", "", "productpage: details base URL (default http://$DETAILS_HOSTNAME[.$SERVICES_DOMAIN]:9080, DETAILS_HOSTNAME defaulting to details)")
	reviewsURL := fs.String("reviews-url", "", "productpage: reviews base URL (default http://$REVIEWS_HOSTNAME[.$SERVICES_DOMAIN]:9080, REVIEWS_HOSTNAME defaulting to reviews)")
	ratingsURL := fs.String("ratings-url", "", "productpage and reviews: ratings base URL (default http://$RATINGS_HOSTNAME[.$SERVICES_DOMAIN]:9080, RATINGS_HOSTNAME defaulting to ratings; reviews uses $RATINGS_SERVICE_PORT for the port when set)")
	timeout := fs.Duration("timeout", 3*time.Second, "productpage: timeout of each call to details, reviews and ratings")
	attempts := fs.Int("reviews-attempts", 2, "productpage: attempts at the reviews call (2 = one retry)")
	ratingsTimeout := fs.Duration("ratings-timeout", 0, "reviews: timeout of the call to ratings (default 10s for black stars, 2.5s otherwise, as Istio's)")
	starColor := fs.String("star-color", "", "reviews: star colour (default $STAR_COLOR, else black for v2 and red for v3)")
	clusterName := fs.String("cluster-name", getenv("CLUSTER_NAME"), `reviews: the "clustername" it reports (default $CLUSTER_NAME)`)
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long SIGTERM/SIGINT waits for requests in flight")
	if err := fs.Parse(args); err != nil {
		return runConfig{}, err
	}
	if fs.NArg() > 0 {
		return runConfig{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := c.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return runConfig{}, fmt.Errorf("--log-level %q: %w", *logLevel, err)
	}
	if c.Instance == "" {
		c.Instance = c.Service + "-" + c.Version
	}
	if c.ShutdownTimeout < 0 {
		return runConfig{}, errors.New("--shutdown-timeout must not be negative")
	}

	domain := ""
	if d := getenv("SERVICES_DOMAIN"); d != "" {
		domain = "." + d
	}
	serviceURL := func(flagValue, hostEnv, host, port string) string {
		if flagValue != "" {
			return flagValue
		}
		if h := getenv(hostEnv); h != "" {
			host = h
		}
		return "http://" + host + domain + ":" + port
	}

	switch c.Service {
	case "productpage", "details", "ratings":
		if c.Version != "v1" {
			return runConfig{}, fmt.Errorf("--version %q: %s has only v1", c.Version, c.Service)
		}
	case "reviews":
	case "":
		return runConfig{}, errors.New("--service is required: productpage, details, reviews or ratings")
	default:
		return runConfig{}, fmt.Errorf("--service %q: want productpage, details, reviews or ratings", c.Service)
	}

	switch c.Service {
	case "productpage":
		if *timeout <= 0 || *attempts < 1 {
			return runConfig{}, errors.New("--timeout must be positive and --reviews-attempts at least 1")
		}
		p := productpage.Defaults()
		p.DetailsURL = serviceURL(*detailsURL, "DETAILS_HOSTNAME", "details", "9080")
		p.ReviewsURL = serviceURL(*reviewsURL, "REVIEWS_HOSTNAME", "reviews", "9080")
		p.RatingsURL = serviceURL(*ratingsURL, "RATINGS_HOSTNAME", "ratings", "9080")
		p.Timeout, p.ReviewsAttempts = *timeout, *attempts
		c.ProductPage = p
	case "reviews":
		r, err := reviews.Defaults(c.Version)
		if err != nil {
			return runConfig{}, fmt.Errorf("--version: %w", err)
		}
		port := getenv("RATINGS_SERVICE_PORT")
		if port == "" {
			port = "9080"
		}
		r.RatingsURL = serviceURL(*ratingsURL, "RATINGS_HOSTNAME", "ratings", port)
		if v := getenv("ENABLE_RATINGS"); v != "" {
			on, err := strconv.ParseBool(v)
			if err != nil {
				return runConfig{}, fmt.Errorf("ENABLE_RATINGS %q: %w", v, err)
			}
			r.Ratings = on
		}
		color := *starColor
		if color == "" {
			color = getenv("STAR_COLOR")
		}
		if color != "" {
			r.StarColor = strings.ToLower(color)
			// Istio's reviews waits 10 s for ratings with black stars, 2.5 s otherwise.
			r.RatingsTimeout = 2500 * time.Millisecond
			if r.StarColor == "black" {
				r.RatingsTimeout = 10 * time.Second
			}
		}
		if *ratingsTimeout > 0 {
			r.RatingsTimeout = *ratingsTimeout
		}
		r.Instance, r.ClusterName = c.Instance, *clusterName
		c.Reviews = r
	}
	return c, nil
}
