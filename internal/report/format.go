package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"
)

// Formats are the formats Write writes.
var Formats = []string{"table", "csv", "json"}

// Write writes d as format: "table" for people, "csv" (one row per figure:
// section, name, currency, count, amount_cents) or "json" (Daily).
func Write(w io.Writer, d *Daily, format string) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	case "csv":
		return writeCSV(w, d)
	case "table":
		return writeTable(w, d)
	}
	return fmt.Errorf("report: unknown format %q (want table, csv or json)", format)
}

func writeCSV(w io.Writer, d *Daily) error {
	c := csv.NewWriter(w)
	i := strconv.FormatInt
	rows := [][]string{{"section", "name", "currency", "count", "amount_cents"}}
	for _, o := range d.Orders {
		rows = append(rows, []string{"orders", "placed", o.Currency, i(o.Placed, 10), i(o.ValueCents, 10)},
			[]string{"orders", "confirmed", o.Currency, i(o.Confirmed, 10), ""})
	}
	for _, m := range d.Revenue {
		rows = append(rows, []string{"revenue", "payments captured", m.Currency, i(m.Count, 10), i(m.AmountCents, 10)})
	}
	for _, m := range d.Refunds {
		rows = append(rows, []string{"refunds", "payments refunded", m.Currency, i(m.Count, 10), i(m.AmountCents, 10)})
	}
	for _, c := range d.Cancellations {
		rows = append(rows, []string{"cancellations", c.Reason, "", i(c.Count, 10), ""})
	}
	for _, p := range d.TopProducts {
		rows = append(rows, []string{"top products", p.ProductID + " " + p.SKU + " " + p.Name, p.Currency, i(p.Quantity, 10), i(p.ValueCents, 10)})
	}
	rows = append(rows, []string{"parcels", "shipped", "", i(d.Parcels.Shipped, 10), ""},
		[]string{"parcels", "created", "", i(d.Parcels.Created, 10), ""},
		[]string{"parcels", "dispatched", "", i(d.Parcels.Dispatched, 10), ""},
		[]string{"parcels", "delivered", "", i(d.Parcels.Delivered, 10), ""},
		[]string{"parcels", "cancelled", "", i(d.Parcels.Cancelled, 10), ""})
	if err := c.WriteAll(rows); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// money formats cents as units with two decimals.
func money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

func writeTable(w io.Writer, d *Daily) error {
	fmt.Fprintf(w, "Daily report, event time %s to %s (UTC), %d events\n\n", d.From.UTC().Format(time.RFC3339), d.To.UTC().Format(time.RFC3339), d.Events)
	t := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(t, "CURRENCY\tORDERS PLACED\tORDER VALUE\tCONFIRMED\tREVENUE\tPAYMENTS\tREFUNDS\tREFUNDED\t")
	for _, c := range currencies(d) {
		var o CurrencyOrders
		var rev, ref Money
		for _, x := range d.Orders {
			if x.Currency == c {
				o = x
			}
		}
		for _, x := range d.Revenue {
			if x.Currency == c {
				rev = x
			}
		}
		for _, x := range d.Refunds {
			if x.Currency == c {
				ref = x
			}
		}
		fmt.Fprintf(t, "%s\t%d\t%s\t%d\t%s\t%d\t%s\t%d\t\n", c, o.Placed, money(o.ValueCents), o.Confirmed, money(rev.AmountCents), rev.Count, money(ref.AmountCents), ref.Count)
	}
	t.Flush()
	fmt.Fprintln(w, "\nCancellations by reason:")
	t = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range d.Cancellations {
		fmt.Fprintf(t, "  %s\t%d\n", c.Reason, c.Count)
	}
	if len(d.Cancellations) == 0 {
		fmt.Fprintln(t, "  none")
	}
	t.Flush()
	fmt.Fprintf(w, "\nTop products (by quantity ordered):\n")
	t = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(t, "  PRODUCT\tSKU\tNAME\tQUANTITY\tVALUE")
	for _, p := range d.TopProducts {
		fmt.Fprintf(t, "  %s\t%s\t%s\t%d\t%s %s\n", p.ProductID, p.SKU, p.Name, p.Quantity, money(p.ValueCents), p.Currency)
	}
	t.Flush()
	_, err := fmt.Fprintf(w, "\nParcels: %d orders shipped; labels: %d created, %d picked up by the carrier, %d delivered, %d cancelled\n",
		d.Parcels.Shipped, d.Parcels.Created, d.Parcels.Dispatched, d.Parcels.Delivered, d.Parcels.Cancelled)
	return err
}

// currencies returns every currency of d, sorted.
func currencies(d *Daily) []string {
	var out []string
	for _, o := range d.Orders {
		out = append(out, o.Currency)
	}
	for _, m := range append(slices.Clone(d.Revenue), d.Refunds...) {
		out = append(out, m.Currency)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
