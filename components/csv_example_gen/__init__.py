"""CsvExampleGen executor that reads gzip-compressed CSV as well as plain."""
