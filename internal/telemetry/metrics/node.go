package metrics

// MetaStatsAddr is the xDS node metadata key by which a proxy tells the
// control plane where it serves /stats/prometheus (Istio's 15090), as
// HOST:PORT; mastd's dashboard scrapes the standard metrics there.
const MetaStatsAddr = "MAST_STATS_ADDR"
