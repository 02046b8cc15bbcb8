module sporepause

go 1.26.8
