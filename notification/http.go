package notification

import (
	"net/http"

	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
)

// Routes registers the notification API.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/notifications", s.handleList)
}

// handleList: GET /notifications?limit=&offset=&userId=&template=&subjectId=
// lists notifications newest first: a customer's own; for admins every
// user's, or one user's with userId.
func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	id, err := auth.Require(r.Context())
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	q := r.URL.Query()
	f := filter{Template: q.Get("template"), SubjectID: q.Get("subjectId")}
	if f.UserID, err = id.ListOwner(q.Get("userId"), "notifications"); err != nil {
		httpx.Error(w, r, err)
		return
	}
	limit, offset, err := httpx.Page(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	list, err := s.store.list(r.Context(), f, limit, offset)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"notifications": list, "limit": limit, "offset": offset, "next": httpx.NextPage(r, len(list), limit, offset)})
}
