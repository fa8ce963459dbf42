package notification

import (
	"embed"
	"fmt"
	"strings"
	"text/template"
)

// Each template file defines "subject" (one line) and "body" (plain text)
// over a view.
//
//go:embed templates/*.tmpl
var templateFS embed.FS

// view is what templates see. Fields a trigger does not have stay empty.
type view struct {
	Name  string // the recipient's name
	Email string // the recipient's address
	// profile-updated
	Changed  []string
	NewEmail string // set when the email address changed
	// order templates
	OrderID        string
	TrackingNumber string
	Reason         string
}

type templates struct{ byName map[string]*template.Template }

// parseTemplates parses every template of Templates and checks it defines
// a subject and a body.
func parseTemplates() (*templates, error) {
	t := &templates{byName: map[string]*template.Template{}}
	funcs := template.FuncMap{"join": strings.Join}
	for _, name := range Templates {
		file := name + ".tmpl"
		tt, err := template.New(file).Funcs(funcs).ParseFS(templateFS, "templates/"+file)
		if err != nil {
			return nil, fmt.Errorf("notification: template %s: %w", name, err)
		}
		if tt.Lookup("subject") == nil || tt.Lookup("body") == nil {
			return nil, fmt.Errorf("notification: template %s must define \"subject\" and \"body\"", name)
		}
		t.byName[name] = tt
	}
	return t, nil
}

// render returns the subject and body of template name for v. The subject
// is folded onto one line, whatever the data holds.
func (t *templates) render(name string, v view) (subject, body string, err error) {
	tt, ok := t.byName[name]
	if !ok {
		return "", "", fmt.Errorf("notification: no template %q", name)
	}
	var sb, bb strings.Builder
	if err := tt.ExecuteTemplate(&sb, "subject", v); err != nil {
		return "", "", fmt.Errorf("notification: render %s subject: %w", name, err)
	}
	if err := tt.ExecuteTemplate(&bb, "body", v); err != nil {
		return "", "", fmt.Errorf("notification: render %s body: %w", name, err)
	}
	return strings.Join(strings.Fields(sb.String()), " "), strings.TrimLeft(bb.String(), "\n"), nil
}
