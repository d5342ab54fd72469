package mesostest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/gogo/protobuf/proto"
	"github.com/mesos/mesos-go/api/v1/lib/encoding/codecs"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
)

// decodeError is a 400 answer to a body that could not be turned into a Call
// (reference §1.4 rows 5–7).
type decodeError struct{ body string }

func (e *decodeError) Error() string { return e.body }

// decodeCall turns a request body into a Call the way the agent does for the
// given (already checked) content type. typePresent reports whether the call
// carried a known `type`: the agent's parser drops unknown enum values of
// optional fields, which then read as absent.
func decodeCall(contentType string, body []byte) (call *executor.Call, typePresent bool, err error) {
	switch contentType {
	case string(codecs.MediaTypeProtobuf):
		return decodeProtobuf(body)
	case string(codecs.MediaTypeJSON):
		return decodeJSON(body)
	}
	panic("mesostest: decodeCall with unchecked content type " + contentType)
}

func decodeProtobuf(body []byte) (*executor.Call, bool, error) {
	parseErr := &decodeError{"Failed to parse body into Call protobuf"}
	var call executor.Call
	// The generated Unmarshal also enforces required fields, as the agent's
	// ParseFromString does.
	if err := proto.Unmarshal(body, &call); err != nil {
		return nil, false, parseErr
	}
	_, typePresent := executor.Call_Type_name[int32(call.Type)]
	// gogo keeps enum numbers it does not know; protobuf C++ moves them to the
	// unknown fields, so the field reads as unset there.
	if !dropUnknownEnums(reflect.ValueOf(&call).Elem()) {
		return nil, false, parseErr
	}
	return &call, typePresent, nil
}

func decodeJSON(body []byte) (*executor.Call, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // keep numbers verbatim when re-encoding below
	var value any
	if err := dec.Decode(&value); err != nil {
		return nil, false, &decodeError{"Failed to parse body into JSON: " + err.Error()}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false, &decodeError{"Failed to parse body into JSON: unexpected data after the JSON value"}
	}
	object, ok := value.(map[string]any)
	if !ok {
		return nil, false, &decodeError{"Failed to parse body into JSON: expecting a JSON object"}
	}

	convertErr := func(detail string) error {
		return &decodeError{"Failed to convert JSON into Call protobuf: " + detail}
	}
	var missing []string
	if err := checkJSONObject(object, reflect.TypeOf(executor.Call{}), "", &missing); err != nil {
		return nil, false, convertErr(err.Error())
	}
	_, typePresent := object["type"]

	cleaned, err := json.Marshal(object)
	if err != nil {
		return nil, false, convertErr(err.Error())
	}
	var call executor.Call
	if err := call.UnmarshalJSON(cleaned); err != nil {
		return nil, false, convertErr(err.Error())
	}
	if len(missing) > 0 {
		return nil, false, convertErr("Missing required fields: " + strings.Join(missing, ", "))
	}
	return &call, typePresent, nil
}

// stoutError is a conversion error worded exactly as stout's.
type stoutError string

func (e stoutError) Error() string { return string(e) }

// protoTag is the part of a generated field's `protobuf:"..."` tag we need.
type protoTag struct {
	name     string
	label    string // req, opt or rep
	enumType string // registered enum name, empty for non-enum fields
}

func parseProtoTag(f reflect.StructField) (protoTag, bool) {
	raw, ok := f.Tag.Lookup("protobuf")
	if !ok {
		return protoTag{}, false
	}
	parts := strings.Split(raw, ",")
	if len(parts) < 3 {
		return protoTag{}, false
	}
	tag := protoTag{label: parts[2]}
	for _, p := range parts[3:] {
		if v, ok := strings.CutPrefix(p, "name="); ok {
			tag.name = v
		}
		if v, ok := strings.CutPrefix(p, "enum="); ok {
			tag.enumType = v
		}
	}
	return tag, tag.name != ""
}

// messageType returns the message type a field holds (directly, by pointer or
// repeated), or nil when the field is not a message field.
func messageType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct {
		return t
	}
	return nil
}

// checkJSONObject applies the parts of stout's JSON→protobuf conversion that
// the generated ffjson decoder is more lenient about, walking the object
// along the protobuf tags of msgType:
//   - null means unset, and an unset required field is collected into missing
//     as a dotted path, in protobuf's InitializationErrorString form;
//   - an enum given as a JSON number is an error;
//   - an unknown enum name is an error for a required field and silently
//     dropped (the key is removed) for an optional or repeated one.
func checkJSONObject(object map[string]any, msgType reflect.Type, path string, missing *[]string) error {
	for i := range msgType.NumField() {
		field := msgType.Field(i)
		tag, ok := parseProtoTag(field)
		if !ok {
			continue
		}
		value, present := object[tag.name]
		if present && value == nil {
			delete(object, tag.name)
			present = false
		}
		if !present {
			if tag.label == "req" {
				*missing = append(*missing, path+tag.name)
			}
			continue
		}
		if tag.enumType != "" {
			if err := checkJSONEnum(object, tag); err != nil {
				return err
			}
			continue
		}
		if field.Type.Kind() == reflect.Map {
			continue
		}
		elemType := messageType(field.Type)
		if elemType == nil {
			continue
		}
		switch v := value.(type) {
		case map[string]any:
			if err := checkJSONObject(v, elemType, path+tag.name+".", missing); err != nil {
				return err
			}
		case []any:
			for j, elem := range v {
				if m, ok := elem.(map[string]any); ok {
					if err := checkJSONObject(m, elemType, fmt.Sprintf("%s%s[%d].", path, tag.name, j), missing); err != nil {
						return err
					}
				}
			}
		}
		// Values of the wrong JSON type are left to the decoder to reject.
	}
	return nil
}

func checkJSONEnum(object map[string]any, tag protoTag) error {
	values := proto.EnumValueMap(tag.enumType)
	if values == nil {
		return fmt.Errorf("mesostest: enum %s is not registered", tag.enumType)
	}
	// keep reports whether one JSON value stays in the message.
	keep := func(v any) (bool, error) {
		switch v := v.(type) {
		case json.Number:
			return false, stoutError(fmt.Sprintf("Not expecting a JSON number for field '%s'", tag.name))
		case string:
			if _, known := values[v]; known {
				return true, nil
			}
			if tag.label == "req" {
				return false, stoutError(fmt.Sprintf("Failed to find enum for '%s'", v))
			}
			return false, nil
		}
		return true, nil
	}
	switch v := object[tag.name].(type) {
	case []any:
		kept := v[:0]
		for _, elem := range v {
			ok, err := keep(elem)
			if err != nil {
				return err
			}
			if ok {
				kept = append(kept, elem)
			}
		}
		object[tag.name] = kept
	default:
		ok, err := keep(v)
		if err != nil {
			return err
		}
		if !ok {
			delete(object, tag.name)
		}
	}
	return nil
}

var errUnknownRequiredEnum = errors.New("unknown value of a required enum")

// dropUnknownEnums clears enum fields holding numbers the enum does not
// define, recursing through messages. It returns false when such a field is
// required (the message would then be missing it).
func dropUnknownEnums(msg reflect.Value) bool {
	return walkEnums(msg) == nil
}

func walkEnums(msg reflect.Value) error {
	msgType := msg.Type()
	for i := range msgType.NumField() {
		field := msgType.Field(i)
		tag, ok := parseProtoTag(field)
		if !ok {
			continue
		}
		fv := msg.Field(i)
		if tag.enumType != "" {
			if err := clearUnknownEnum(fv, tag); err != nil {
				return err
			}
			continue
		}
		if messageType(field.Type) == nil || field.Type.Kind() == reflect.Map {
			continue
		}
		switch fv.Kind() {
		case reflect.Struct:
			if err := walkEnums(fv); err != nil {
				return err
			}
		case reflect.Pointer:
			if !fv.IsNil() {
				if err := walkEnums(fv.Elem()); err != nil {
					return err
				}
			}
		case reflect.Slice:
			for j := range fv.Len() {
				elem := fv.Index(j)
				if elem.Kind() == reflect.Pointer {
					if elem.IsNil() {
						continue
					}
					elem = elem.Elem()
				}
				if err := walkEnums(elem); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func clearUnknownEnum(fv reflect.Value, tag protoTag) error {
	values := proto.EnumValueMap(tag.enumType)
	known := func(v reflect.Value) bool {
		for _, n := range values {
			if int64(n) == v.Int() {
				return true
			}
		}
		return false
	}
	switch fv.Kind() {
	case reflect.Pointer:
		if !fv.IsNil() && !known(fv.Elem()) {
			if tag.label == "req" {
				return errUnknownRequiredEnum
			}
			fv.SetZero()
		}
	case reflect.Slice:
		kept := reflect.MakeSlice(fv.Type(), 0, fv.Len())
		for j := range fv.Len() {
			if known(fv.Index(j)) {
				kept = reflect.Append(kept, fv.Index(j))
			}
		}
		if kept.Len() != fv.Len() {
			fv.Set(kept)
		}
	default:
		if !known(fv) {
			if tag.label == "req" {
				return errUnknownRequiredEnum
			}
			fv.SetZero()
		}
	}
	return nil
}
