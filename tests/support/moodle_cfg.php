<?php
// A stand-in for Moodle's admin/cli/cfg.php: same options, same exit codes
// (moodle/moodle admin/cli/cfg.php at c8ead2012272ebd904f3029c9dc31564d47421e5).
// Copied into a stand-in Moodle root by tests/support/moodle_site.py.
define('CLI_SCRIPT', true);
require(__DIR__ . '/../../config.php');

function cli_error($text, $code = 1) {
    fwrite(STDERR, $text . PHP_EOL);
    exit($code);
}

$known = ['help', 'component', 'name', 'set', 'unset', 'shell-arg', 'json', 'no-eol'];
$options = ['help' => false, 'component' => null, 'name' => null, 'set' => null,
            'unset' => false, 'shell-arg' => false, 'json' => false, 'no-eol' => false];
$unrecognised = [];
foreach (array_slice($argv, 1) as $arg) {
    if (!preg_match('/^--([a-z-]+)(?:=(.*))?$/s', $arg, $m) || !in_array($m[1], $known, true)) {
        $unrecognised[] = $arg;
        continue;
    }
    $options[$m[1]] = array_key_exists(2, $m) ? $m[2] : true;
}
if ($unrecognised) {
    cli_error("Unrecognised options:\n  " . implode("\n  ", $unrecognised));
}
if ($options['help']) {
    echo "Displays the current value of the given site setting.\n";
    exit(2);
}
$component = $options['component'] ?? 'core';
$table = $CFG->prefix . 'config_plugins';

function db() {
    global $CFG;
    static $db = null;
    if ($db === null) {
        if ($CFG->dbtype === 'pgsql') {
            $db = pg_connect("host={$CFG->dbhost} port={$CFG->dbport} dbname={$CFG->dbname} user={$CFG->dbuser}");
        } else {
            $db = mysqli_connect(null, $CFG->dbuser, '', $CFG->dbname, 0, $CFG->dbsocket);
        }
        if (!$db) {
            cli_error('Database connection failed', 1);
        }
    }
    return $db;
}

function query($sql, $params) {
    global $CFG;
    if ($CFG->dbtype === 'pgsql') {
        $i = 0;
        $sql = preg_replace_callback('/\?/', function () use (&$i) { return '$' . (++$i); }, $sql);
        $res = pg_query_params(db(), $sql, $params);
        if ($res === false) { cli_error('Database error: ' . pg_last_error(db()), 1); }
        return pg_fetch_all($res) ?: [];
    }
    $stmt = mysqli_prepare(db(), $sql);
    if ($params) { mysqli_stmt_bind_param($stmt, str_repeat('s', count($params)), ...$params); }
    mysqli_stmt_execute($stmt);
    $res = mysqli_stmt_get_result($stmt);
    return $res ? mysqli_fetch_all($res, MYSQLI_ASSOC) : [];
}

function get_config($plugin, $name) {
    global $CFG, $table;
    if (isset($CFG->forced_plugin_settings[$plugin][$name])) {
        return (string) $CFG->forced_plugin_settings[$plugin][$name];
    }
    $rows = query("SELECT value FROM $table WHERE plugin = ? AND name = ?", [$plugin, $name]);
    return $rows ? $rows[0]['value'] : false;
}

function set_config($name, $value, $plugin) {
    global $table;
    if ($value === null) {
        query("DELETE FROM $table WHERE plugin = ? AND name = ?", [$plugin, $name]);
    } else if (query("SELECT id FROM $table WHERE plugin = ? AND name = ?", [$plugin, $name])) {
        query("UPDATE $table SET value = ? WHERE plugin = ? AND name = ?", [$value, $plugin, $name]);
    } else {
        query("INSERT INTO $table (plugin, name, value) VALUES (?, ?, ?)", [$plugin, $name, $value]);
    }
}

if ($options['unset'] || $options['set'] !== null) {
    if (empty($options['name'])) {
        cli_error('Missing configuration variable name', 2);
    }
    if (array_key_exists($options['name'], $CFG->config_php_settings)) {
        cli_error('The configuration variable is hard-set in the config.php, unable to change.', 4);
    }
    $new = $options['set'];
    if ($new !== get_config($component, $options['name'])) {
        set_config($options['name'], $options['unset'] ? null : $new, $component);
    }
    exit(0);
}
if ($options['name'] === null) {
    cli_error('The stand-in lists no components', 2);
}
$got = get_config($component, $options['name']);
if ($got === false) {
    cli_error('No such configuration variable found.', 3);
}
echo $options['no-eol'] ? $got : $got . PHP_EOL;
exit(0);
