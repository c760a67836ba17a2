// Command ctlocal runs the whole service on one machine, without AWS or
// Docker (`make local`):
//
//   - the AWS API emulator on 127.0.0.1:4566, started when nothing answers
//     there and stopped again on exit;
//   - the stack deployed to it from template.yaml (provision.py);
//   - each function's real bootstrap under the Lambda Runtime Interface
//     Emulator, with the environment the stack gave it plus local mode;
//   - a gateway on http://127.0.0.1:3000 that turns HTTP requests into API
//     Gateway HTTP API events for the API function, routed as the template's
//     HttpApi events say;
//   - a poller that plays the SQS event-source mapping for the delivery
//     function: batches, ReportBatchItemFailures, visibility.
//
// The polled queues keep the template's visibility timeout (six times the
// delivery function's timeout, as on AWS), so a batch whose process died comes
// back after six minutes. For local testing only, -visibility-timeout 30s
// shortens it on this stack's queues (the fault battery's short form in
// `make test` uses it); the next start without the flag sets the template's
// value back.
//
// `ctlocal with-emulator -- cmd args` runs a command with the emulator up (for
// `make test`). Ctrl-C stops everything ctlocal started.
package main
