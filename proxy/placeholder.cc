namespace portcullis::proxy {}
