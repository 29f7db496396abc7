package metricsource_test

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/metricsource"
)

func TestParseFaults(t *testing.T) {
	t.Parallel()
	got, err := metricsource.ParseFaults(" t1/svc/eu-west=3, t1/svc/us-east=nodata")
	require.NoError(t, err)
	require.Equal(t, map[metricsource.FaultKey]metricsource.Fault{
		{TenantID: "t1", Target: "svc", Region: "eu-west"}: {Degrade: 3},
		{TenantID: "t1", Target: "svc", Region: "us-east"}: {NoData: true},
	}, got)
	got, err = metricsource.ParseFaults("")
	require.NoError(t, err)
	require.Empty(t, got)
	for _, bad := range []string{"t1/svc=3", "t1/svc/eu-west", "t1//eu=2", "t1/svc/eu=0", "t1/svc/eu=-1", "t1/svc/eu=NaN",
		"t1/svc/eu=Inf", "t1/svc/eu=1001", "t1/svc/eu=x", strings.Repeat("a/b/c=2,", 101)} {
		_, err := metricsource.ParseFaults(bad)
		require.Error(t, err, bad)
	}
}

func FuzzParseFaults(f *testing.F) {
	for _, s := range []string{"t1/svc/eu-west=3", "a/b/c=nodata,d/e/f=0.5", "", "=", "a/b/c=1e309"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := metricsource.ParseFaults(s)
		if err != nil {
			return
		}
		for k, v := range got {
			if k.TenantID == "" || k.Target == "" || k.Region == "" {
				t.Fatalf("empty key part in %q", s)
			}
			if !v.NoData && !(v.Degrade > 0 && v.Degrade <= 1000) {
				t.Fatalf("factor %v out of range from %q", v.Degrade, s)
			}
		}
	})
}

// Healthy regions read alike, a degraded one reads worse by its factor, a silent one
// not at all; the same question always gets the same answer.
func TestSimulatedSeries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := metricsource.NewSimulatedSeries(nil)
	mean := func(xs []float64) float64 {
		sum := 0.0
		for _, x := range xs {
			sum += x
		}
		return sum / float64(len(xs))
	}
	a, err := s.Series(ctx, "t1", "svc", []string{"eu-west"}, metricsource.MetricLatencyP99, 10*time.Minute, 30*time.Second)
	require.NoError(t, err)
	require.Len(t, a, 20)
	b, err := s.Series(ctx, "t1", "svc", []string{"us-east"}, metricsource.MetricLatencyP99, 10*time.Minute, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, a, b, "healthy regions read alike")
	again, err := s.Series(ctx, "t1", "svc", []string{"eu-west"}, metricsource.MetricLatencyP99, 10*time.Minute, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, a, again, "deterministic")

	s.SetFault(metricsource.FaultKey{TenantID: "t1", Target: "svc", Region: "eu-west"}, metricsource.Fault{Degrade: 3})
	worse, err := s.Series(ctx, "t1", "svc", []string{"eu-west"}, metricsource.MetricLatencyP99, 10*time.Minute, 30*time.Second)
	require.NoError(t, err)
	require.InDelta(t, 3*mean(a), mean(worse), 1e-9)
	tp, err := s.Series(ctx, "t1", "svc", []string{"eu-west"}, metricsource.MetricThroughput, 10*time.Minute, 30*time.Second)
	require.NoError(t, err)
	tpOK, err := s.Series(ctx, "t1", "svc", []string{"us-east"}, metricsource.MetricThroughput, 10*time.Minute, 30*time.Second)
	require.NoError(t, err)
	require.Less(t, mean(tp), mean(tpOK)/2, "throughput divided")

	s.SetFault(metricsource.FaultKey{TenantID: "t1", Target: "svc", Region: "eu-west"}, metricsource.Fault{NoData: true})
	none, err := s.Series(ctx, "t1", "svc", []string{"eu-west"}, metricsource.MetricErrorRate, 10*time.Minute, 30*time.Second)
	require.NoError(t, err)
	require.Empty(t, none)
	s.SetFault(metricsource.FaultKey{TenantID: "t1", Target: "svc", Region: "eu-west"}, metricsource.Fault{})
	back, err := s.Series(ctx, "t1", "svc", []string{"eu-west"}, metricsource.MetricLatencyP99, 10*time.Minute, 30*time.Second)
	require.NoError(t, err)
	require.Equal(t, a, back, "a cleared fault is gone")

	_, err = s.Series(ctx, "t1", "svc", nil, "cpu", time.Minute, time.Second)
	require.ErrorIs(t, err, metricsource.ErrUnknownMetric)
	_, err = s.Series(ctx, "t1", "svc", nil, metricsource.MetricErrorRate, time.Hour, time.Second)
	require.Error(t, err, "too many points")
}

func TestPrometheusSeries(t *testing.T) {
	t.Parallel()
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/api/v1/query_range", r.URL.Path)
		got = r.URL.Query().Get("query")
		require.Equal(t, "30", r.URL.Query().Get("step"))
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1.5"],[31,"NaN"],[61,"+Inf"],[91,"2"]]}]}}`))
	}))
	t.Cleanup(srv.Close)
	src := metricsource.NewPrometheus(srv.URL, nil).(metricsource.SeriesSource)
	out, err := src.Series(context.Background(), "t1", `svc"x`, []string{"eu.west"}, metricsource.MetricThroughput, 2*time.Minute, 30*time.Second)
	require.NoError(t, err)
	require.Len(t, out, 4)
	require.Equal(t, 1.5, out[0])
	require.True(t, math.IsNaN(out[1]) && math.IsNaN(out[2]))
	require.Equal(t, `sum(rate(http_requests_total{service="svc\"x",region=~"eu\\.west"}[1m]))`, got)
}

func TestParseMatrix(t *testing.T) {
	t.Parallel()
	out, err := metricsource.ParseMatrix([]byte(`{"status":"success","data":{"resultType":"matrix","result":[]}}`))
	require.NoError(t, err)
	require.Empty(t, out)
	for _, bad := range []string{`{`, `{"status":"success","data":{"resultType":"vector","result":[]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"values":[]},{"values":[]}]}}`,
		`{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1,2]]}]}}`,
		`{"status":"error","errorType":"bad_data","error":"x"}`, `{"status":"maybe"}`} {
		_, err := metricsource.ParseMatrix([]byte(bad))
		require.Error(t, err, bad)
	}
}

func FuzzParseMatrix(f *testing.F) {
	f.Add([]byte(`{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1,"1"]]}]}}`))
	f.Add([]byte(`{"status":"error"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := metricsource.ParseMatrix(body)
		if err == nil && len(out) > metricsource.MaxSeriesPoints {
			t.Fatalf("%d points", len(out))
		}
		for _, v := range out {
			if math.IsInf(v, 0) {
				t.Fatal("an infinite value")
			}
		}
	})
}
