package mesostest

import (
	"fmt"
	"strconv"
	"strings"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/encoding"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
)

// validateCall is the agent's validateExecutorCall (reference §4), returning
// the reason text (to be prefixed "Failed to validate Executor::Call: ") or
// "" when the call is valid.
//
// The checks for an absent executor_id or framework_id are not repeated here:
// both are required fields, so a call without them never gets past decoding.
func validateCall(call *executor.Call, typePresent bool) string {
	if !typePresent {
		return "Expecting 'type' to be present"
	}
	eid, fid := call.ExecutorID.Value, call.FrameworkID.Value
	switch call.Type {
	case executor.Call_SUBSCRIBE:
		if call.Subscribe == nil {
			return "Expecting 'subscribe' to be present"
		}
	case executor.Call_UPDATE:
		if call.Update == nil {
			return "Expecting 'update' to be present"
		}
		status := call.Update.Status
		if status.UUID == nil {
			return "Expecting 'uuid' to be present"
		}
		if !validUUID(status.UUID) {
			return "Not a valid UUID"
		}
		if status.ExecutorID != nil && status.ExecutorID.Value != eid {
			return fmt.Sprintf("ExecutorID in Call: %s does not match ExecutorID in TaskStatus: %s", eid, status.ExecutorID.Value)
		}
		if status.GetSource() != mesos.SOURCE_EXECUTOR {
			return fmt.Sprintf("Received Call from executor %s of framework %s with invalid source, expecting 'SOURCE_EXECUTOR'", eid, fid)
		}
		if status.GetState() == mesos.TASK_STAGING {
			return fmt.Sprintf("Received TASK_STAGING from executor %s of framework %s which is not allowed", eid, fid)
		}
		if status.CheckStatus != nil {
			return validateCheckStatus(status.CheckStatus)
		}
	case executor.Call_MESSAGE:
		if call.Message == nil {
			return "Expecting 'message' to be present"
		}
	}
	return ""
}

// validUUID mirrors stout's UUID::fromBytes: exactly 16 bytes with an
// RFC-4122 version (high nibble of byte 6) between 1 and 5.
func validUUID(b []byte) bool {
	if len(b) != 16 {
		return false
	}
	version := b[6] >> 4
	return version >= 1 && version <= 5
}

func validateCheckStatus(cs *mesos.CheckStatusInfo) string {
	if cs.Type == nil {
		return "CheckStatusInfo must specify 'type'"
	}
	switch *cs.Type {
	case mesos.CheckInfo_COMMAND:
		if cs.Command == nil {
			return "Expecting 'command' to be set for COMMAND check's status"
		}
	case mesos.CheckInfo_HTTP:
		if cs.HTTP == nil {
			return "Expecting 'http' to be set for HTTP check's status"
		}
	case mesos.CheckInfo_TCP:
		if cs.TCP == nil {
			return "Expecting 'tcp' to be set for TCP check's status"
		}
	case mesos.CheckInfo_UNKNOWN:
		return "'UNKNOWN' is not a valid check's status type"
	}
	return ""
}

// negotiateStream picks the SUBSCRIBE stream's media type from the Accept
// header values (reference §1.2): JSON when acceptable (including no header),
// else protobuf, else none.
func negotiateStream(accept []string) (encoding.MediaType, bool) {
	if accept == nil {
		return codecs.MediaTypeJSON, true
	}
	for _, mt := range []encoding.MediaType{codecs.MediaTypeJSON, codecs.MediaTypeProtobuf} {
		if acceptsMediaType(accept, string(mt)) {
			return mt, true
		}
	}
	return "", false
}

// acceptsMediaType follows libprocess: the first media range naming the type
// exactly, as "application/*" or as "*/*" decides, and a q of 0 refuses.
func acceptsMediaType(accept []string, mediaType string) bool {
	major, _, _ := strings.Cut(mediaType, "/")
	candidates := map[string]bool{mediaType: true, major + "/*": true, "*/*": true}
	for _, header := range accept {
		for _, mediaRange := range strings.Split(header, ",") {
			params := strings.Split(mediaRange, ";")
			if !candidates[strings.TrimSpace(params[0])] {
				continue
			}
			for _, p := range params[1:] {
				key, value, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.TrimSpace(key) != "q" {
					continue
				}
				if q, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && q == 0 {
					return false
				}
			}
			return true
		}
	}
	return false
}
