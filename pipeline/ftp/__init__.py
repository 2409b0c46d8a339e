"""FTP(S) protocol only: replies, server features, the ftplib client, the session and the delivery steps."""
