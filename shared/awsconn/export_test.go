package awsconn

import "time"

// SetAnswerTimeout changes answerTimeout until the returned function runs.
func SetAnswerTimeout(d time.Duration) (restore func()) {
	old := answerTimeout
	answerTimeout = d
	return func() { answerTimeout = old }
}
