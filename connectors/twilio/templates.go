package twilio

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/twilio/twilio-go/client"
	contentv1 "github.com/twilio/twilio-go/rest/content/v1"

	"github.com/trestle-bridge/trestle/bridgev2"
)

// templateCommand starts a message in a WhatsApp chat that sends an
// approved template instead of text: "/template HX... value | value".
// It is a message rather than a bot command so that it goes through the
// outbound journal like any other send.
const templateCommand = "/template"

// contentSIDPattern is a Content API template SID.
var contentSIDPattern = regexp.MustCompile(`^HX[0-9a-fA-F]{32}$`)

// contentTemplate is an approved WhatsApp template of the account.
type contentTemplate struct {
	SID  string
	Name string
	// Body is the twilio/text body, with {{1}}-style placeholders.
	Body string
	// Variables are the placeholders, in order.
	Variables []string
}

// parseTemplateMessage reads "/template HX... a | b" into the template
// SID and its ContentVariables; ok is false for texts that are not a
// template send at all.
func parseTemplateMessage(text string) (sid, variables string, ok bool, err error) {
	rest, found := strings.CutPrefix(strings.TrimSpace(text), templateCommand)
	if !found || (rest != "" && rest[0] != ' ' && rest[0] != '\n') {
		return "", "", false, nil
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 || !contentSIDPattern.MatchString(fields[0]) {
		return "", "", true, bridgev2.NewError("Write "+templateCommand+" followed by a template SID (HX…) and its values separated by |, as the templates command lists them.", nil)
	}
	sid = fields[0]
	values := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), sid))
	if values == "" {
		return sid, "", true, nil
	}
	vars := map[string]string{}
	for i, v := range strings.Split(values, "|") {
		vars[strconv.Itoa(i+1)] = strings.TrimSpace(v)
	}
	b, _ := json.Marshal(vars)
	return sid, string(b), true, nil
}

// listApprovedTemplates lists the account's templates approved for
// WhatsApp, by name.
func (r *restClient) listApprovedTemplates(ctx context.Context) ([]contentTemplate, error) {
	var out []contentTemplate
	token, page := "", ""
	for range maxListPages {
		var resp *contentv1.ListContentAndApprovalsResponse
		err := r.call(ctx, "list content templates", idempotent, func(h *client.RequestHandler) error {
			var err error
			resp, err = contentv1.NewApiService(h).PageContentAndApprovals((&contentv1.ListContentAndApprovalsParams{}).SetPageSize(100), token, page)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, c := range resp.Contents {
			if t, ok := approvedTemplate(&c); ok {
				out = append(out, t)
			}
		}
		var ok bool
		if token, page, ok = nextPage(resp.Meta.NextPageUrl); !ok {
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// approvedTemplate reads a ContentAndApprovals entry, if WhatsApp approved
// it.
func approvedTemplate(c *contentv1.ContentV1ContentAndApprovals) (contentTemplate, bool) {
	if c.Sid == nil || c.ApprovalRequests == nil {
		return contentTemplate{}, false
	}
	if st, _ := (*c.ApprovalRequests)["status"].(string); st != "approved" {
		return contentTemplate{}, false
	}
	t := contentTemplate{SID: *c.Sid, Name: deref(c.FriendlyName)}
	if c.Types != nil {
		if text, ok := (*c.Types)["twilio/text"].(map[string]any); ok {
			t.Body, _ = text["body"].(string)
		}
	}
	if c.Variables != nil {
		for k := range *c.Variables {
			t.Variables = append(t.Variables, k)
		}
		sort.Slice(t.Variables, func(i, j int) bool {
			a, errA := strconv.Atoi(t.Variables[i])
			b, errB := strconv.Atoi(t.Variables[j])
			if errA == nil && errB == nil {
				return a < b
			}
			return t.Variables[i] < t.Variables[j]
		})
	}
	return t, true
}

// templateList is the answer of the templates command, in markdown.
func templateList(templates []contentTemplate) string {
	if len(templates) == 0 {
		return "The account has no templates approved for WhatsApp. Create one in the Twilio console (Content Template Builder) and submit it for WhatsApp approval."
	}
	var sb strings.Builder
	sb.WriteString("Templates approved for WhatsApp; send one in a WhatsApp chat with `" + templateCommand + " <SID> value | value`:\n\n")
	for _, t := range templates {
		fmt.Fprintf(&sb, "* **%s** `%s`", t.Name, t.SID)
		if len(t.Variables) > 0 {
			fmt.Fprintf(&sb, " (%d values)", len(t.Variables))
		}
		if t.Body != "" {
			sb.WriteString(": " + snippet(t.Body))
		}
		sb.WriteString("\n")
	}
	return sb.String()
}
