package adapters

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

// FuzzValidateParams: a handler's params are user YAML; every built-in
// adapter's validation takes any JSON object and answers nil or an error,
// never a panic.
func FuzzValidateParams(f *testing.F) {
	for _, s := range []string{
		`{"status":{"code":7,"message":"Not allowed"}}`,
		`{"overrides":["v1","v2"],"blacklist":false,"entryType":"STRINGS"}`,
		`{"providerUrl":"http://127.0.0.1:1/list","refreshInterval":"1s","ttl":"300s","entryType":"IP_ADDRESSES"}`,
		`{"quotas":[{"name":"requestcountquota.instance.istio-system","maxAmount":500,"validDuration":"1s","overrides":[{"dimensions":{"destination":"reviews"},"maxAmount":1}]}]}`,
		`{"redisServerUrl":"127.0.0.1:6379","connectionPoolSize":10,"quotas":[{"name":"q","maxAmount":5,"validDuration":"5s","bucketDuration":"500ms","rateLimitAlgorithm":"ROLLING_WINDOW"}]}`,
		`{"metrics":[{"name":"requests_total","instanceName":"requestcount.metric.istio-system","kind":"COUNTER","labelNames":["reporter"]}]}`,
		`{"outputAsJson":true,"logStream":"STDOUT","severityLevels":{"info":0}}`,
		`{"url":"http://127.0.0.1:9411/api/v2/spans","sampleProbability":0.5}`,
	} {
		f.Add(s)
	}
	infos := All()
	f.Fuzz(func(t *testing.T, js string) {
		var m map[string]any
		if json.Unmarshal([]byte(js), &m) != nil {
			return
		}
		params, err := structpb.NewStruct(m)
		if err != nil {
			return
		}
		for _, i := range infos {
			i.Validate(params)
		}
	})
}
