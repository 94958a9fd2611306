<?php
// A PHP page run by php-fpm behind wharf (see ../README.md of the examples).
header('X-Powered-By-Example: wharf');
$name = $_POST['name'] ?? $_GET['name'] ?? '';
?>
<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>PHP behind wharf</title><link rel="stylesheet" href="/style.css"></head>
<body>
<p id="greeting">Hello<?= $name !== '' ? ', ' . htmlspecialchars($name) : '' ?> from PHP <?= PHP_VERSION ?></p>
<p id="path-info"><?= htmlspecialchars($_SERVER['PATH_INFO'] ?? '') ?></p>
<form method="post"><input name="name"><button>Send</button></form>
</body>
</html>
