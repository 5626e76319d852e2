package productpage

import (
	"bytes"
	"html/template"
	"net/http"
)

// style is the page's whole stylesheet, inline: the page needs no CDN. It
// reproduces the look of Istio's Bootstrap page (inverse navbar, primary
// headings, block quotes, glyph stars).
const style = `
*{box-sizing:border-box}
body{margin:0;font-family:"Helvetica Neue",Helvetica,Arial,sans-serif;font-size:14px;line-height:1.43;color:#333;background:#fff}
a{color:#337ab7;text-decoration:none}a:hover{text-decoration:underline}
.navbar{background:#222;border-bottom:1px solid #080808;min-height:50px;margin-bottom:20px}
.navbar .container{max-width:1170px;margin:0 auto;padding:0 15px;display:flex;align-items:center;justify-content:space-between;min-height:50px}
.navbar-brand{color:#9d9d9d;font-size:18px}.navbar-brand:hover{color:#fff;text-decoration:none}
.navbar-text{color:#9d9d9d;margin:0}.navbar-text a{color:#fff}
.btn{display:inline-block;padding:6px 12px;font-size:14px;border:1px solid #ccc;border-radius:4px;background:#fff;color:#333;cursor:pointer}
.btn-primary{background:#337ab7;border-color:#2e6da4;color:#fff}
details.login{position:relative}details.login summary{list-style:none}details.login summary::-webkit-details-marker{display:none}
details.login form{position:absolute;right:0;top:40px;z-index:10;width:300px;background:#fff;border:1px solid rgba(0,0,0,.2);border-radius:6px;box-shadow:0 5px 15px rgba(0,0,0,.5);padding:15px}
.form-control{display:block;width:100%;height:34px;padding:6px 12px;margin:0 0 10px;border:1px solid #ccc;border-radius:4px;font-size:14px}
.container-fluid{padding:0 15px}
.row{display:flex;flex-wrap:wrap;margin:0 -15px}
.col-md-12{flex:0 0 100%;padding:0 15px}.col-md-6{flex:0 0 50%;padding:0 15px;min-width:300px}
.text-center{text-align:center}.text-primary{color:#337ab7}
h3{font-size:24px;font-weight:500;margin:20px 0 10px}h4{font-size:18px;font-weight:500;margin:10px 0}
dl{margin:0 0 20px}dt{font-weight:700}
blockquote{padding:10px 20px;margin:0 0 20px;font-size:17.5px;border-left:5px solid #eee}
blockquote p{margin:0 0 10px}blockquote small{display:block;font-size:80%;color:#777}
blockquote small:before{content:"\2014 \00A0"}
.glyphicon{font-size:16px;letter-spacing:2px}
.served-by{color:#777;font-size:12px}
table{border-collapse:collapse;margin:10px 0}td,th{border:1px solid #ddd;padding:5px 8px;text-align:left}
`

const layout = `{{define "head"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="X-UA-Compatible" content="IE=edge">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Simple Bookstore App</title>
<style>{{.}}</style>
</head>
{{end}}`

const productPageHTML = `{{define "productpage"}}{{template "head" css}}<body>
<nav class="navbar navbar-inverse navbar-static-top">
  <div class="container">
    <a class="navbar-brand" href="#">BookInfo Sample</a>
{{- if .User}}
    <p class="navbar-text navbar-right"><span class="glyphicon glyphicon-user" aria-hidden="true"></span>
      Signed in as {{.User}} ( <a href="logout">sign out</a> )</p>
{{- else}}
    <details class="login">
      <summary class="btn btn-default navbar-btn navbar-right">Sign in</summary>
      <form method="post" action="login" name="login_form">
        <h4>Please sign in</h4>
        <input type="text" class="form-control" name="username" id="username" placeholder="User Name">
        <input type="password" class="form-control" name="passwd" placeholder="Password">
        <button type="submit" class="btn btn-primary">Sign in</button>
      </form>
    </details>
{{- end}}
  </div>
</nav>

<div class="container-fluid">
  <div class="row">
    <div class="col-md-12">
      <h3 class="text-center text-primary">{{.Product.Title}}</h3>
      <p>Summary: {{.Product.DescriptionHTML}}</p>
    </div>
  </div>

  <div class="row">
    <div class="col-md-6">
{{- if not .DetailsError}}
      <h4 class="text-center text-primary">Book Details</h4>
      <dl>
        <dt>Type:</dt>{{index .Details "type"}}
        <dt>Pages:</dt>{{index .Details "pages"}}
        <dt>Publisher:</dt>{{index .Details "publisher"}}
        <dt>Language:</dt>{{index .Details "language"}}
        <dt>ISBN-10:</dt>{{index .Details "ISBN-10"}}
        <dt>ISBN-13:</dt>{{index .Details "ISBN-13"}}
      </dl>
{{- else}}
      <h4 class="text-center text-primary">Error fetching product details!</h4>
      <p>{{.DetailsError}}</p>
{{- end}}
    </div>

    <div class="col-md-6">
{{- if not .ReviewsError}}
      <h4 class="text-center text-primary">Book Reviews</h4>
{{- range .Reviews.Reviews}}
      <blockquote>
        <p>{{.Text}}</p>
        <small>{{.Reviewer}}</small>
{{- with .Rating}}{{if .Stars}}
        <font color="{{.Color}}" style="color:{{.Color}}">
{{- range stars .Stars}}
          <span class="glyphicon glyphicon-star">&#9733;</span>
{{- end}}
{{- range empty .Stars}}
          <span class="glyphicon glyphicon-star-empty">&#9734;</span>
{{- end}}
        </font>
{{- else if .Error}}
        <p><i>{{.Error}}</i></p>
{{- end}}{{end}}
      </blockquote>
{{- end}}
      <dl class="served-by">
        <dt>Reviews served by:</dt>
        <u>{{.Reviews.PodName}}</u>
      </dl>
{{- else}}
      <h4 class="text-center text-primary">Error fetching product reviews!</h4>
      <p>{{.ReviewsError}}</p>
{{- end}}
    </div>
  </div>
</div>
</body>
</html>
{{end}}`

const indexHTML = `{{define "index"}}{{template "head" css}}<body>
<nav class="navbar navbar-inverse navbar-static-top">
  <div class="container"><a class="navbar-brand" href="#">BookInfo Sample</a></div>
</nav>
<div class="container-fluid">
  <div class="row">
    <div class="col-md-12">
      <h3 class="text-center text-primary">Hello! This is a simple bookstore application consisting of three services as shown below</h3>
      <table>
        <tr><th>service</th><th>address</th><th>calls</th></tr>
{{- range .Services}}
        <tr><td>{{.Name}}</td><td>{{.URL}}</td><td>{{range $i, $c := .Calls}}{{if $i}}, {{end}}{{$c}}{{end}}</td></tr>
{{- end}}
      </table>
      <p><h4>Click on one of the links below to auto generate a request to the backend as a real user or a tester</h4></p>
      <p><a href="productpage?u=normal">Normal user</a></p>
      <p><a href="productpage?u=test">Test user</a></p>
    </div>
  </div>
</div>
</body>
</html>
{{end}}`

// indexPage is the data of the index template.
type indexPage struct {
	Services []serviceRow
}

// serviceRow is one line of the index page's service table.
type serviceRow struct {
	Name  string
	URL   string
	Calls []string
}

// maxStars is the width of a rating.
const maxStars = 5

func parseTemplates() *template.Template {
	funcs := template.FuncMap{
		"css": func() template.CSS { return template.CSS(style) },
		// Slices of a zero-size type: drawing stars allocates nothing.
		"stars": func(n int) []struct{} { return make([]struct{}, min(max(n, 0), maxStars)) },
		"empty": func(n int) []struct{} { return make([]struct{}, maxStars-min(max(n, 0), maxStars)) },
	}
	return template.Must(template.New("bookinfo").Funcs(funcs).Parse(layout + productPageHTML + indexHTML))
}

// render executes template name into a buffer first, so that a template error
// becomes a 500 instead of a truncated page.
func (h *Handler) render(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		h.log.Error("rendering page", "template", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}
