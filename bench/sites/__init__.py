"""Django sites the benches serve beside opsite: opsite with a twenty-query page added, and a
bare Django project (startproject's defaults) with the same two pages, for side-by-side runs."""
