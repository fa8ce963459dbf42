package catalog

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/eventmart/eventmart"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/internal/auth"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/outbox"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/internal/sqldb"
)

// Routes registers the catalog API.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/products", s.handleList)
	mux.HandleFunc("GET /api/v1/products/{id}", s.handleGet)
	mux.HandleFunc("POST /api/v1/products", s.handleCreate)
	mux.HandleFunc("PATCH /api/v1/products/{id}", s.handleUpdate)
	mux.HandleFunc("DELETE /api/v1/products/{id}", s.handleDiscontinue)
}

// handleList: GET /products?limit=&offset=&ids=a,b&includeDiscontinued=true
func (s *Service) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset, err := httpx.Page(r)
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	var ids []string
	if v := q.Get("ids"); v != "" {
		ids = strings.Split(v, ",")
		if len(ids) > 500 {
			httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "ids: at most 500"))
			return
		}
	}
	include := len(ids) > 0 // asked for by id: discontinued ones too
	switch v := q.Get("includeDiscontinued"); v {
	case "", "false":
	case "true":
		include = true
	default:
		httpx.Error(w, r, eventmart.Errorf(eventmart.EINVALID, "includeDiscontinued must be true or false, not %q", v))
		return
	}
	var products []*Product
	if len(ids) > 0 && include {
		products, err = s.byIDs(r.Context(), ids, limit, offset)
	} else {
		products, err = s.store.list(r.Context(), ids, include, limit, offset)
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"products": products, "limit": limit, "offset": offset, "next": httpx.NextPage(r, len(products), limit, offset)})
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ps, err := s.byIDs(r.Context(), []string{id}, 1, 0)
	if err == nil && len(ps) == 0 {
		err = eventmart.Errorf(eventmart.ENOTFOUND, "product %s not found", id)
	}
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, ps[0])
}

// byIDs returns the products of ids, discontinued ones included, in
// creation order (then by id), limit of them after offset: from memory
// when it holds every one, else from the database (remembering them).
func (s *Service) byIDs(ctx context.Context, ids []string, limit, offset int) ([]*Product, error) {
	distinct := make([]string, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(distinct, id) { // at most 500
			distinct = append(distinct, id)
		}
	}
	rs, ok := s.mem.lookup(distinct)
	if ok {
		s.fromMemory.Inc()
	} else {
		s.fromDatabase.Inc()
		read := s.mem.Begin(distinct...)
		found, err := s.store.byIDs(ctx, distinct)
		s.mem.end(read, found)
		if err != nil {
			return nil, err
		}
		rs = found
	}
	ps := make([]*Product, len(rs))
	for i := range rs {
		ps[i] = &rs[i].p
	}
	slices.SortFunc(ps, func(a, b *Product) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	ps = ps[min(offset, len(ps)):]
	return ps[:min(limit, len(ps))], nil
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.RequireAdmin(r.Context()); err != nil {
		httpx.Error(w, r, err)
		return
	}
	var in ProductInput
	if err := httpx.Decode(r, &in); err != nil {
		httpx.Error(w, r, err)
		return
	}
	now := s.d.Now().UTC()
	p := &Product{ID: event.NewID(), Status: StatusActive, CreatedAt: now, UpdatedAt: now}
	if err := in.apply(p, true); err != nil {
		httpx.Error(w, r, err)
		return
	}
	err := s.d.DB.InTx(r.Context(), func(tx *sqldb.Tx) error {
		if err := s.store.insert(r.Context(), tx, p); err != nil {
			return err
		}
		return s.emit(r.Context(), tx, &event.ProductCreated{ProductID: p.ID, SKU: p.SKU, Name: p.Name, PriceCents: p.PriceCents, Currency: p.Currency})
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.d.Outbox.Notify()
	w.Header().Set("Location", "/api/v1/products/"+p.ID)
	httpx.JSON(w, http.StatusCreated, p)
}

func (s *Service) handleUpdate(w http.ResponseWriter, r *http.Request) {
	var in ProductInput
	s.change(w, r, func(p *Product) (event.Payload, error) {
		if err := httpx.Decode(r, &in); err != nil {
			return nil, err
		}
		if p.Status == StatusDiscontinued {
			return nil, eventmart.Errorf(eventmart.ECONFLICT, "product %s is discontinued", p.ID)
		}
		before := *p
		if err := in.apply(p, false); err != nil {
			return nil, err
		}
		if *p == before {
			return nil, nil // nothing changed: no event, no new updatedAt
		}
		return &event.ProductUpdated{ProductID: p.ID, SKU: p.SKU, Name: p.Name, PriceCents: p.PriceCents, Currency: p.Currency}, nil
	})
}

func (s *Service) handleDiscontinue(w http.ResponseWriter, r *http.Request) {
	s.change(w, r, func(p *Product) (event.Payload, error) {
		if p.Status == StatusDiscontinued {
			return nil, nil // idempotent: already discontinued, nothing to emit
		}
		p.Status = StatusDiscontinued
		p.Availability.InStock = false
		return &event.ProductDiscontinued{ProductID: p.ID}, nil
	})
}

// change runs an admin change of one product: read it, let fn modify it
// and name the event, store both in one transaction.
func (s *Service) change(w http.ResponseWriter, r *http.Request, fn func(*Product) (event.Payload, error)) {
	ctx := r.Context()
	if _, err := auth.RequireAdmin(ctx); err != nil {
		httpx.Error(w, r, err)
		return
	}
	var p *Product
	err := s.d.DB.InTx(ctx, func(tx *sqldb.Tx) error {
		var err error
		if p, err = s.store.product(ctx, tx, r.PathValue("id")); err != nil {
			return err
		}
		ev, err := fn(p)
		if err != nil || ev == nil {
			return err
		}
		p.UpdatedAt = s.d.Now().UTC()
		if err := s.store.update(ctx, tx, p); err != nil {
			return err
		}
		return s.emit(ctx, tx, ev)
	})
	if err != nil {
		httpx.Error(w, r, err)
		return
	}
	s.d.Outbox.Notify()
	httpx.JSON(w, http.StatusOK, p)
}

func (s *Service) emit(ctx context.Context, tx *sqldb.Tx, p event.Payload) error {
	return outbox.Emit(ctx, tx, service.Source(Name), service.RequestOrigin(ctx), p)
}
