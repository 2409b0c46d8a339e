"""Development aids: the embedded FTP server and the station simulator. Never imported by the product path."""
