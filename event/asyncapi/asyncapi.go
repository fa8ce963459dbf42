// Package asyncapi derives the AsyncAPI 3.0 document of Eventmart's events
// from the catalog: one channel per ADR-0006 topic (partitions, retention),
// one message per event type and version (the envelope, with the payload's
// JSON Schema as its data, the record headers, the partition key), the
// operations the services send, and those each consumer group receives
// (event.ConsumerGroups). The gateway serves it at
// GET /api/v1/asyncapi.json; docs/asyncapi.json is a copy a test keeps in
// sync (`go generate ./event` rewrites it).
package asyncapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/eventmart/eventmart/event"
)

var (
	once sync.Once
	doc  []byte
)

// Document returns the AsyncAPI 3.0 document as indented JSON; each call
// returns a fresh copy.
func Document() []byte {
	once.Do(func() {
		b, err := build()
		if err != nil {
			panic(err) // the catalog and its embedded schemas are fixed at build time; a test covers this
		}
		doc = b
	})
	return bytes.Clone(doc)
}

// M is a JSON object; encoding/json sorts its keys, so the document is
// deterministic.
type M = map[string]any

func ref(path string) M { return M{"$ref": path} }

func build() ([]byte, error) {
	schemas := M{"Envelope": envelopeSchema()}
	messages := M{}
	channels := M{}
	operations := M{}
	// msgRefs: per topic, per event type, its messages (one per version).
	msgRefs := map[event.Topic]map[event.Type][]any{}
	for _, t := range event.Topics {
		chMsgs := M{}
		var opMsgs []any
		typeRefs := map[event.Type][]any{}
		for _, s := range event.Catalog() {
			if s.Topic != t.Name {
				continue
			}
			for _, v := range s.Versions() {
				name := fmt.Sprintf("%s.%s", s.Type, v)
				raw, ok := event.Schema(s.Type, v)
				if !ok {
					return nil, fmt.Errorf("asyncapi: no schema for %s", name)
				}
				var sch M
				if err := json.Unmarshal(raw, &sch); err != nil {
					return nil, fmt.Errorf("asyncapi: schema %s: %w", name, err)
				}
				delete(sch, "$schema")
				delete(sch, "$id")
				schemas[name] = sch
				messages[name] = message(s, v, name)
				chMsgs[name] = ref("#/components/messages/" + name)
				r := ref(fmt.Sprintf("#/channels/%s/messages/%s", t.Name, name))
				opMsgs = append(opMsgs, r)
				typeRefs[s.Type] = append(typeRefs[s.Type], r)
			}
		}
		channels[string(t.Name)] = M{
			"address":     string(t.Name),
			"title":       string(t.Name),
			"description": fmt.Sprintf("%s. %d partitions, retention %d days; records are keyed by the entity id.", t.Description, t.Partitions, t.Retention/event.Day),
			"messages":    chMsgs,
			"bindings": M{"kafka": M{
				"topic":              string(t.Name),
				"partitions":         t.Partitions,
				"topicConfiguration": M{"retention.ms": t.RetentionMs(), "cleanup.policy": []string{"delete"}},
				"bindingVersion":     "0.5.0",
			}},
		}
		msgRefs[t.Name] = typeRefs
		operations["send-"+string(t.Name)] = M{
			"action":   "send",
			"title":    "Publish to " + string(t.Name),
			"summary":  "The owning services publish these events through their transactional outbox.",
			"channel":  ref("#/channels/" + string(t.Name)),
			"messages": opMsgs,
		}
	}
	// One receive operation per consumer group and topic it reads, with
	// the messages its handlers take (other types are skipped unread).
	for _, g := range event.ConsumerGroups {
		byTopic := map[event.Topic][]any{}
		for _, typ := range g.Types {
			topic := event.TopicOf(typ)
			byTopic[topic] = append(byTopic[topic], msgRefs[topic][typ]...)
		}
		for _, t := range event.Topics {
			refs := byTopic[t.Name]
			if len(refs) == 0 {
				continue
			}
			operations["receive-"+g.Group+"-"+string(t.Name)] = M{
				"action":   "receive",
				"title":    g.Group + " consumes " + string(t.Name),
				"summary":  "The consumer group " + g.Group + " handles these events (each once, through its inbox); it skips the topic's other types.",
				"channel":  ref("#/channels/" + string(t.Name)),
				"messages": refs,
				"bindings": M{"kafka": M{"groupId": M{"type": "string", "enum": []string{g.Group}}, "bindingVersion": "0.5.0"}},
			}
		}
	}
	d := M{
		"asyncapi": "3.0.0",
		"id":       "urn:eventmart:events",
		"info": M{
			"title":   "Eventmart events",
			"version": "1.0.0",
			"description": "Every business event of Eventmart (ADR-0006): the envelope, each event type's payload schema by version, " +
				"the Kafka topics and partition keys. Records also carry CloudEvents binary-mode ce_ headers. " +
				"Schemas are registered under the subject eventmart.<EventType>.<version>.",
		},
		"defaultContentType": "application/json",
		"servers": M{"kafka": M{
			"host":        "{brokers}",
			"protocol":    "kafka",
			"description": "The brokers EVENTMART_BUS=kafka://host:port[,host:port] names (the embedded log has the same topics and partitions)",
			"variables": M{"brokers": M{
				"default":     "127.0.0.1:9092",
				"description": "host:port of a bootstrap broker: EVENTMART_BUS without kafka://",
			}},
		}},
		"channels":   channels,
		"operations": operations,
		"components": M{"schemas": schemas, "messages": messages},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("asyncapi: %w", err)
	}
	return buf.Bytes(), nil
}

func message(s event.Spec, v, name string) M {
	summary := fmt.Sprintf("%s %s; partition key: the payload's %s.", s.Type, v, s.Key)
	if v != s.Version {
		summary += fmt.Sprintf(" Producers emit %s; consumers still accept %s and upcast it.", s.Version, v)
	}
	return M{
		"name":        string(s.Type),
		"title":       fmt.Sprintf("%s %s", s.Type, v),
		"summary":     summary,
		"contentType": "application/json",
		"correlationId": M{
			"description": "the flow's correlation id",
			"location":    "$message.payload#/correlationId",
		},
		"headers": M{
			"type": "object",
			"properties": M{
				"eventType":        M{"const": string(s.Type)},
				"eventVersion":     M{"const": v},
				"eventId":          M{"type": "string", "format": "uuid"},
				"correlationId":    M{"type": "string"},
				"causationId":      M{"type": "string"},
				"source":           M{"type": "string"},
				"traceparent":      M{"type": "string", "description": "W3C Trace Context"},
				"ce_specversion":   M{"const": "1.0"},
				"ce_id":            M{"type": "string", "description": "= eventId"},
				"ce_source":        M{"type": "string", "description": "= /eventmart/<source>"},
				"ce_type":          M{"const": "eventmart." + string(s.Type) + "." + v},
				"ce_time":          M{"type": "string", "format": "date-time"},
				"ce_subject":       M{"type": "string", "description": "= the record key (" + s.Key + ")"},
				"ce_correlationid": M{"type": "string", "description": "extension attribute: = correlationId"},
				"ce_causationid":   M{"type": "string", "description": "extension attribute: = causationId"},
				"content-type":     M{"const": "application/json"},
			},
		},
		"payload": M{"allOf": []any{
			ref("#/components/schemas/Envelope"),
			M{"properties": M{
				"eventType":    M{"const": string(s.Type)},
				"eventVersion": M{"const": v},
				"data":         ref("#/components/schemas/" + name),
			}},
		}},
		"bindings": M{"kafka": M{
			"key":            M{"type": "string", "description": "the partition key: the payload's " + s.Key},
			"bindingVersion": "0.5.0",
		}},
	}
}

func envelopeSchema() M {
	str := M{"type": "string"}
	return M{
		"type":        "object",
		"description": "The ADR-0006 event envelope (the record value).",
		"required":    []string{"eventId", "eventType", "eventVersion", "timestamp", "source", "correlationId", "causationId", "data"},
		"properties": M{
			"eventId":       M{"type": "string", "format": "uuid"},
			"eventType":     str,
			"eventVersion":  M{"type": "string", "pattern": "^v[0-9]+$"},
			"timestamp":     M{"type": "string", "format": "date-time"},
			"source":        str,
			"correlationId": str,
			"causationId":   str,
			"data":          M{"type": "object"},
			"metadata": M{"type": "object", "properties": M{"userId": str, "sessionId": str},
				"additionalProperties": false},
		},
		"additionalProperties": false,
	}
}
