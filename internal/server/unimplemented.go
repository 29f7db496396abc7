package server

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Unimplemented is the one error an RPC returns while its feature has not landed:
// UNIMPLEMENTED (HTTP 501) naming the service, the method, what is missing and the issue
// that tracks it. It never pretends to succeed.
// An issue of 0 means no issue schedules the work yet.
func Unimplemented(service, method, what string, issue int) error {
	tracked := "not scheduled yet"
	if issue > 0 {
		tracked = fmt.Sprintf("tracked in issue #%d", issue)
	}
	return status.Error(codes.Unimplemented, fmt.Sprintf("%s: %s is not implemented yet (%s; %s)", service, method, what, tracked))
}
