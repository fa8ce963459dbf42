package asyncapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/asyncapi"
)

func TestDocsCopyInSync(t *testing.T) {
	b, err := os.ReadFile("../../docs/asyncapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, asyncapi.Document()) {
		t.Error("docs/asyncapi.json differs from the catalog's document: run go generate ./event")
	}
}

// resolve follows a local JSON pointer ("#/a/b") in doc.
func resolve(doc map[string]any, ref string) (any, bool) {
	var cur any = doc
	for _, seg := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// every $ref in v resolves.
func checkRefs(t *testing.T, doc map[string]any, v any, at string) {
	switch x := v.(type) {
	case map[string]any:
		for k, sub := range x {
			if k == "$ref" {
				if _, ok := resolve(doc, sub.(string)); !ok {
					t.Errorf("%s: $ref %s does not resolve", at, sub)
				}
				continue
			}
			checkRefs(t, doc, sub, at+"/"+k)
		}
	case []any:
		for i, sub := range x {
			checkRefs(t, doc, sub, fmt.Sprintf("%s/%d", at, i))
		}
	}
}

func TestDocumentDescribesTheCatalog(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(asyncapi.Document(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["asyncapi"] != "3.0.0" {
		t.Errorf("asyncapi = %v", doc["asyncapi"])
	}
	checkRefs(t, doc, doc, "#")
	for _, topic := range event.Topics {
		ch, ok := resolve(doc, "#/channels/"+string(topic.Name))
		if !ok {
			t.Errorf("no channel %s", topic.Name)
			continue
		}
		k := ch.(map[string]any)["bindings"].(map[string]any)["kafka"].(map[string]any)
		if k["partitions"] != float64(topic.Partitions) {
			t.Errorf("%s: partitions %v, want %d", topic.Name, k["partitions"], topic.Partitions)
		}
		if _, ok := resolve(doc, "#/operations/send-"+string(topic.Name)); !ok {
			t.Errorf("no send operation on %s", topic.Name)
		}
	}
	for _, s := range event.Catalog() {
		for _, v := range s.Versions() {
			name := fmt.Sprintf("%s.%s", s.Type, v)
			if _, ok := resolve(doc, fmt.Sprintf("#/channels/%s/messages/%s", s.Topic, name)); !ok {
				t.Errorf("channel %s lacks message %s", s.Topic, name)
			}
			key, ok := resolve(doc, "#/components/messages/"+name+"/bindings/kafka/key/description")
			if !ok || !strings.Contains(key.(string), s.Key) {
				t.Errorf("%s: partition key %v, want %s", name, key, s.Key)
			}
			sch, ok := resolve(doc, "#/components/schemas/"+name)
			if !ok {
				t.Errorf("no schema %s", name)
				continue
			}
			props := sch.(map[string]any)["properties"].(map[string]any)
			keyField := s.Key
			if name == "LoginFailed.v1" {
				keyField = "email" // v2 keys by account
			}
			if _, ok := props[keyField]; !ok {
				t.Errorf("%s: schema lacks the key field %s", name, keyField)
			}
		}
	}
	if _, ok := resolve(doc, "#/components/schemas/OrderCreated.v2/properties/placedAt"); !ok {
		t.Error("OrderCreated v2 lacks placedAt")
	}
}
