package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/gogo/protobuf/proto"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

// taskFileError is a task file that cannot be run. It names the file and,
// when one is to blame, the field as a dotted path in Mesos' JSON names.
type taskFileError struct {
	file  string
	field string
	msg   string
}

func (e *taskFileError) Error() string {
	if e.field == "" {
		return e.file + ": " + e.msg
	}
	return e.file + ": " + e.field + ": " + e.msg
}

// parseTaskFile turns a task file in Mesos' JSON format (the format of the
// Mesos HTTP API: snake_case field names, enums by name, bytes as base64)
// into a TaskInfo that this executor can run. Anything else is refused with
// a taskFileError, before anything is started.
//
// mesos-go's decoder accepts more than Mesos does (enum numbers, trailing
// data) and names no field in its errors, and unknown fields are silently
// dropped by both, so the document is first checked against the TaskInfo
// type field by field.
func parseTaskFile(file string, data []byte) (mesos.TaskInfo, error) {
	var task mesos.TaskInfo
	fail := func(field, format string, args ...any) (mesos.TaskInfo, error) {
		return task, &taskFileError{file: file, field: field, msg: fmt.Sprintf(format, args...)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return fail("", "the file is empty; it should hold one TaskInfo as a JSON object")
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.UseNumber()
	var document any
	if err := decoder.Decode(&document); err != nil {
		return fail("", "not valid JSON: %s", describeJSONError(data, err))
	}
	rest := int(decoder.InputOffset())
	if _, err := decoder.Token(); err != io.EOF {
		for rest < len(data) && strings.ContainsRune(" \t\r\n", rune(data[rest])) {
			rest++
		}
		line, col := position(data, rest)
		return fail("", "not valid JSON: more data after the TaskInfo object at line %d, column %d", line, col)
	}
	if _, ok := document.(map[string]any); !ok {
		return fail("", "the file holds %s, not a TaskInfo object", describeJSON(document))
	}
	if err := checkField("", document, reflect.TypeOf(task)); err != nil {
		var fieldErr *fieldError
		if errors.As(err, &fieldErr) {
			return fail(fieldErr.path, "%s", fieldErr.msg)
		}
		return fail("", "%v", err)
	}
	if err := task.UnmarshalJSON(data); err != nil {
		return fail("", "not a TaskInfo: %v", err)
	}
	if field, msg := checkRunnable(&task); field != "" {
		return fail(field, "%s", msg)
	}
	return task, nil
}

// checkRunnable checks what mesos-local and this executor need beyond a
// well-formed TaskInfo. It returns the field to blame and why.
func checkRunnable(task *mesos.TaskInfo) (field, msg string) {
	if task.Command != nil {
		return "command", "a task run by a custom executor has no command (Mesos requires exactly one of command and executor, " +
			"and a task with a command runs under Mesos' command executor); put the container's command in the task label " +
			"executor.ShellCommand, or leave it out to run the image's own command"
	}
	if task.Executor != nil && task.Executor.Type == mesos.ExecutorInfo_DEFAULT {
		return "executor.type", "DEFAULT names Mesos' default executor; this executor is CUSTOM (or leave the type out)"
	}
	container := task.Container
	switch {
	case container == nil:
		return "container", `missing; this executor runs Docker containers: set container.type to "DOCKER" and container.docker.image`
	case container.Type == nil:
		return "container.type", `missing; set it to "DOCKER"`
	case *container.Type != mesos.ContainerInfo_DOCKER:
		return "container.type", fmt.Sprintf("%s; this executor runs DOCKER containers only", container.Type.String())
	case container.Docker == nil:
		return "container.docker", "missing; a DOCKER container needs docker.image"
	case strings.TrimSpace(container.Docker.Image) == "":
		return "container.docker.image", "missing or empty; name the image to run, e.g. sidecar-executor/busybox:1.35"
	}
	network := container.Docker.GetNetwork()
	if len(container.Docker.PortMappings) > 0 && network != mesos.ContainerInfo_DockerInfo_BRIDGE && network != mesos.ContainerInfo_DockerInfo_USER {
		return "container.docker.port_mappings", fmt.Sprintf("port mappings need BRIDGE or USER networking, but container.docker.network is %s%s",
			network, map[bool]string{true: " (the default)", false: ""}[container.Docker.Network == nil])
	}
	return "", ""
}

// fieldError is a problem at a path of the JSON document.
type fieldError struct {
	path string
	msg  string
}

func (e *fieldError) Error() string { return e.path + ": " + e.msg }

func fieldErrorf(path, format string, args ...any) error {
	return &fieldError{path: path, msg: fmt.Sprintf(format, args...)}
}

// enumType is what gogo/protobuf generates for a proto enum.
type enumType interface {
	EnumDescriptor() ([]byte, []int)
}

var (
	enumInterface = reflect.TypeOf((*enumType)(nil)).Elem()
	bytesType     = reflect.TypeOf([]byte(nil))
)

// checkField checks a decoded JSON value against the Go type mesos-go
// decodes it into, the way Mesos' own JSON parser would judge it.
func checkField(path string, value any, t reflect.Type) error {
	if value == nil {
		return nil // null leaves the field unset, as in Mesos
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Implements(enumInterface):
		return checkEnum(path, value, t)
	case t == bytesType:
		text, ok := value.(string)
		if !ok {
			return fieldErrorf(path, "expected base64 text, found %s", describeJSON(value))
		}
		if _, err := base64.StdEncoding.DecodeString(text); err != nil {
			return fieldErrorf(path, "not valid base64 (standard alphabet, with padding): %v", err)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		object, ok := value.(map[string]any)
		if !ok {
			return fieldErrorf(path, "expected a JSON object, found %s", describeJSON(value))
		}
		return checkObject(path, object, t)
	case reflect.Slice:
		list, ok := value.([]any)
		if !ok {
			return fieldErrorf(path, "expected a JSON array, found %s", describeJSON(value))
		}
		for i, item := range list {
			if err := checkField(fmt.Sprintf("%s[%d]", path, i), item, t.Elem()); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		object, ok := value.(map[string]any)
		if !ok {
			return fieldErrorf(path, "expected a JSON object, found %s", describeJSON(value))
		}
		for _, key := range sortedKeys(object) {
			if err := checkField(fmt.Sprintf("%s[%q]", path, key), object[key], t.Elem()); err != nil {
				return err
			}
		}
		return nil
	case reflect.String:
		if _, ok := value.(string); !ok {
			return fieldErrorf(path, "expected a string, found %s", describeJSON(value))
		}
		return nil
	case reflect.Bool:
		if _, ok := value.(bool); !ok {
			return fieldErrorf(path, "expected true or false, found %s", describeJSON(value))
		}
		return nil
	case reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return checkNumber(path, value, t.Kind())
	case reflect.Interface:
		return nil // a oneof: mesos-go's decoder judges it
	}
	return fieldErrorf(path, "mesos-local cannot check a field of Go type %s", t)
}

func checkObject(path string, object map[string]any, t reflect.Type) error {
	fields := jsonFields(t)
	for _, key := range sortedKeys(object) {
		fieldType, known := fields[key]
		keyPath := key
		if path != "" {
			keyPath = path + "." + key
		}
		if !known {
			msg := "unknown field (Mesos would ignore it, so it would have no effect)"
			if snake := snakeCase(key); snake != key {
				if _, ok := fields[snake]; ok {
					msg = fmt.Sprintf("unknown field; Mesos' JSON spells it %q", snake)
				}
			}
			return fieldErrorf(keyPath, "%s", msg)
		}
		if err := checkField(keyPath, object[key], fieldType); err != nil {
			return err
		}
	}
	return nil
}

// jsonFields maps the JSON names of a generated struct's fields to their
// types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		field := t.Field(i)
		name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
		if !field.IsExported() || name == "-" || name == "" {
			continue
		}
		fields[name] = field.Type
	}
	return fields
}

func checkEnum(path string, value any, t reflect.Type) error {
	names := enumNames(t)
	hint := ""
	if len(names) > 0 {
		hint = "; one of " + strings.Join(names, ", ")
	}
	name, ok := value.(string)
	if !ok {
		return fieldErrorf(path, "expected an enum name as a string (Mesos' JSON does not accept numbers), found %s%s", describeJSON(value), hint)
	}
	unmarshaler, ok := reflect.New(t).Interface().(json.Unmarshaler)
	if !ok {
		return nil
	}
	if err := unmarshaler.UnmarshalJSON([]byte(strconv.Quote(name))); err != nil {
		return fieldErrorf(path, "%q is not a known value%s", name, hint)
	}
	return nil
}

// enumNames lists an enum's names in numeric order.
func enumNames(t reflect.Type) []string {
	values := proto.EnumValueMap("mesos." + t.Name())
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return values[names[i]] < values[names[j]] })
	return names
}

func checkNumber(path string, value any, kind reflect.Kind) error {
	number, ok := value.(json.Number)
	if !ok {
		return fieldErrorf(path, "expected a number, found %s", describeJSON(value))
	}
	text := number.String()
	var err error
	switch kind {
	case reflect.Int32:
		_, err = strconv.ParseInt(text, 10, 32)
	case reflect.Int64:
		_, err = strconv.ParseInt(text, 10, 64)
	case reflect.Uint32:
		_, err = strconv.ParseUint(text, 10, 32)
	case reflect.Uint64:
		_, err = strconv.ParseUint(text, 10, 64)
	default:
		var f float64
		f, err = strconv.ParseFloat(text, 64)
		if err == nil && (math.IsInf(f, 0) || math.IsNaN(f)) {
			err = errors.New("out of range")
		}
		if err != nil {
			return fieldErrorf(path, "%s is not a usable number", text)
		}
		return nil
	}
	if err != nil {
		switch kind {
		case reflect.Uint32:
			return fieldErrorf(path, "%s is not a whole number from 0 to %d", text, uint32(math.MaxUint32))
		case reflect.Uint64:
			return fieldErrorf(path, "%s is not a whole number from 0 to %d", text, uint64(math.MaxUint64))
		case reflect.Int32:
			return fieldErrorf(path, "%s is not a whole number from %d to %d", text, math.MinInt32, math.MaxInt32)
		default:
			return fieldErrorf(path, "%s is not a whole number from %d to %d", text, math.MinInt64, math.MaxInt64)
		}
	}
	return nil
}

// describeJSON names the kind of a decoded JSON value for a message.
func describeJSON(value any) string {
	switch v := value.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "a JSON object"
	case []any:
		return "a JSON array"
	case string:
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return fmt.Sprintf("the string %q", v)
	case json.Number:
		return "the number " + v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprintf("%T", value)
}

func describeJSONError(data []byte, err error) string {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		// Offset counts the bytes read, the offending one included.
		line, col := position(data, int(syntax.Offset)-1)
		return fmt.Sprintf("%s at line %d, column %d", syntax.Error(), line, col)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the document ends too early (an unclosed object, array or string)"
	}
	return err.Error()
}

// position turns the index of a byte into a 1-based line and column.
func position(data []byte, index int) (line, col int) {
	index = min(max(index, 0), len(data))
	before := data[:index]
	line = bytes.Count(before, []byte("\n")) + 1
	col = index - bytes.LastIndexByte(before, '\n')
	return line, col
}

func sortedKeys(object map[string]any) []string {
	keys := make([]string, 0, len(object))
	for key := range object {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

// snakeCase turns portMappings into port_mappings, the spelling of the
// same field in Mesos' JSON.
func snakeCase(name string) string {
	var b strings.Builder
	for i, r := range name {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
