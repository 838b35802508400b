namespace portcullis::verifier {}
