<?php
// The PHP page of 'make run', served by php-fpm through the fastcgi plugin.
header("Content-Type: text/html; charset=utf-8");
$method = htmlspecialchars($_SERVER["REQUEST_METHOD"]);
$software = htmlspecialchars($_SERVER["SERVER_SOFTWARE"]);
?>
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Hello from PHP</title></head>
<body>
<h1>Hello from PHP <?= PHP_VERSION ?></h1>
<p><?= $method ?> request served by <?= $software ?> through FastCGI.</p>
</body>
</html>
