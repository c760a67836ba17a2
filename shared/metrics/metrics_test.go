package metrics

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestFlushWritesEMF(t *testing.T) {
	var r Recorder
	r.Count(Deliveries)
	r.Count(Deliveries)
	r.Add(AttemptLatency, 12)
	r.Add(AttemptLatency, 40)
	r.Add(FanOut, 3)
	var buf bytes.Buffer
	if err := r.Flush(&buf, "stack-1", time.UnixMilli(1795776903000)); err != nil {
		t.Fatal(err)
	}
	var line struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		Stack          string
		Deliveries     float64
		AttemptLatency []float64
		FanOut         []float64
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	cw := line.AWS.CloudWatchMetrics
	if line.AWS.Timestamp != 1795776903000 || len(cw) != 1 || cw[0].Namespace != "CtWebhooks" || cw[0].Dimensions[0][0] != "Stack" || len(cw[0].Metrics) != 3 {
		t.Errorf("EMF envelope %+v", line.AWS)
	}
	if line.Stack != "stack-1" || line.Deliveries != 2 || len(line.AttemptLatency) != 2 || len(line.FanOut) != 1 {
		t.Errorf("values %+v", line)
	}
	buf.Reset()
	_ = r.Flush(&buf, "stack-1", time.Now())
	if buf.Len() != 0 {
		t.Errorf("second flush wrote %s", buf.String())
	}
}
