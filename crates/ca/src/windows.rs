//! What a stock Windows agent runs, with nothing of ours installed (the seed's agents had
//! certreq, certutil and MOMCertImport, and nothing else):
//!
//! - the **installer** the CA writes beside each certificate, as the seed's "installer
//!   executable, which contains the certificate and a script that will accept this
//!   certificate on the local server and instruct the SCOM agent to start communicating":
//!   `<fqdn>.install.ps1` ([`install_ps1`], PowerShell 2.0 as Windows Server 2008 R2 ships it,
//!   and 1.0: no `try`, no `$PSScriptRoot`) and `<fqdn>.install.cmd` ([`install_cmd`], cmd.exe
//!   alone). Each carries the certificate and the root inline (base64), checks the root
//!   against the thumbprint pinned when the CA was made, checks the machine is the host, then
//!   runs `certutil -addstore root`, `certreq -accept`, `MOMCertImport /SubjectName <fqdn>`,
//!   `net stop HealthService` and `net start HealthService`, logging each step and leaving
//!   with an exit code per failure ([`InstallExit`]). `-WhatIf` (`/check`) makes every check
//!   and changes nothing.
//! - the **agent kit** ([`agent_kit`]): the agent's `certreq.inf` from the CA's policy and
//!   `request.ps1` / `request.cmd`, which find the machine's FQDN, run `certreq -new -q -f
//!   certreq.inf <FQDN>.req` and copy the request to the share.
//!
//! Nothing from outside reaches the scripts' text unescaped: host names are validated DNS
//! names, the share a validated UNC path, certificates base64.

use opsmgr_hostname::HostName;

use crate::error::{Error, Result};

/// The installer's exit codes, the same for both scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstallExit {
    /// Installed (or, in check mode, every check passed).
    Done = 0,
    /// Bad usage.
    Usage = 1,
    /// Not run as an administrator.
    NotAdministrator = 2,
    /// The root in the script is not the pinned root.
    WrongRoot = 3,
    /// This machine is not the certificate's host.
    WrongHost = 4,
    /// `certutil -addstore root` failed.
    AddStore = 5,
    /// `certreq -accept` failed.
    Accept = 6,
    /// The root and the certificate are installed, but MOMCertImport.exe was not found (the
    /// agent is not installed yet): run `MOMCertImport /SubjectName <fqdn>` once it is.
    NoMomCertImport = 7,
    /// MOMCertImport failed.
    MomCertImport = 8,
    /// The Health Service did not start again.
    HealthService = 9,
    /// The script's files could not be written.
    Files = 10,
}

impl InstallExit {
    /// Every code, with what it means (for the scripts' headers and the README).
    pub const ALL: [(InstallExit, &'static str); 11] = [
        (
            InstallExit::Done,
            "installed (check mode: every check passed)",
        ),
        (InstallExit::Usage, "bad usage"),
        (InstallExit::NotAdministrator, "not run as an administrator"),
        (
            InstallExit::WrongRoot,
            "the root in the script is not the pinned root",
        ),
        (
            InstallExit::WrongHost,
            "this machine is not the certificate's host",
        ),
        (InstallExit::AddStore, "certutil -addstore root failed"),
        (InstallExit::Accept, "certreq -accept failed"),
        (
            InstallExit::NoMomCertImport,
            "root and certificate installed, but MOMCertImport.exe was not found (no agent yet): run MOMCertImport /SubjectName FQDN after installing the agent",
        ),
        (InstallExit::MomCertImport, "MOMCertImport failed"),
        (
            InstallExit::HealthService,
            "the Health Service did not start again",
        ),
        (
            InstallExit::Files,
            "the script's files could not be written",
        ),
    ];

    fn code(self) -> u8 {
        self as u8
    }
}

/// What an installer installs.
#[derive(Debug, Clone, Copy)]
pub struct Installer<'a> {
    /// The host (the certificate's common name).
    pub host: &'a HostName,
    /// The CA's request id.
    pub request_id: i64,
    /// The certificate (DER).
    pub certificate: &'a [u8],
    /// The root (DER).
    pub root: &'a [u8],
    /// The root's SHA-1 thumbprint as pinned when the CA was made (upper-case hex).
    pub root_thumbprint: &'a str,
    /// The CA's name.
    pub ca_name: &'a str,
}

/// Base64 lines of 64 characters, as PEM has them.
fn base64_lines(der: &[u8]) -> Vec<String> {
    let pem =
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, der).unwrap_or_default();
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect()
}

fn check_thumbprint(t: &str) -> Result<()> {
    if t.len() == 40 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::certificate(format!(
            "'{t}' is not a SHA-1 thumbprint (40 hex digits)"
        )))
    }
}

/// The CA's name as scripts carry it: a host-name-like word (the CA's names are validated so).
fn check_ca_name(name: &str) -> Result<()> {
    crate::names::check_dns_name(name)
        .map_err(|e| Error::certificate(format!("the CA name '{name}': {e}")))
}

/// `<fqdn>.install.ps1`: the seed's installer for PowerShell 2.0 (and 1.0), CRLF.
pub fn install_ps1(i: &Installer<'_>) -> Result<String> {
    check_thumbprint(i.root_thumbprint)?;
    check_ca_name(i.ca_name)?;
    let host = i.host.as_str();
    let mut codes = String::new();
    for (code, what) in InstallExit::ALL {
        codes.push_str(&format!("#   {:>2}  {what}\n", code.code()));
    }
    let here = |der: &[u8]| base64_lines(der).join("\n");
    let script = format!(
        r#"# {host}.install.ps1: installs the certificate {ca} issued to {host} (request {id}), as the
# seed's installer did: trust the root, accept the certificate, tell the agent to use it,
# restart the agent. Made by om-ca; run it from the folder the CA's operator publishes, never
# from the request share. PowerShell 2.0 (1.0 too); run it as an administrator:
#   powershell -ExecutionPolicy Bypass -File {host}.install.ps1 [-WhatIf]
# (PowerShell 1.0: Set-ExecutionPolicy RemoteSigned once, then
#   powershell -Command "& '.\{host}.install.ps1'; exit $LASTEXITCODE")
# -WhatIf (or /check) makes every check and changes nothing. Before the agent is installed it
# trusts the root and accepts the certificate, and says to run MOMCertImport afterwards.
# The log is %TEMP%\{host}.install.log.
# Exit codes:
{codes}param([switch]$WhatIf)

$Fqdn = '{host}'
$RootThumbprint = '{pin}'
$Log = Join-Path $env:TEMP '{host}.install.log'
$Work = $null

function Write-Log([string]$Message) {{
    $line = '{{0:u}} {{1}}' -f (Get-Date), $Message
    Add-Content -Path $Log -Value $line
    Write-Host $Message
}}

function Stop-Install([int]$Code, [string]$Message) {{
    Write-Log ('FAILED ({{0}}): {{1}}' -f $Code, $Message)
    if ($Work -and (Test-Path $Work)) {{ Remove-Item -Recurse -Force $Work }}
    exit $Code
}}

trap {{ Stop-Install {files} ('unexpected error: ' + $_) }}

# Anything but -WhatIf or /check is a mistake: never install on a mistyped check.
foreach ($a in $args) {{
    if ($a -eq '/check') {{ $WhatIf = $true }}
    else {{ Stop-Install {usage} ('unknown argument ' + $a + '; usage: {host}.install.ps1 [-WhatIf]') }}
}}

Write-Log ('installing the certificate of {{0}} (request {id})' -f $Fqdn)
$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {{
    Stop-Install {admin} 'run it as an administrator'
}}

$RootBase64 = @'
{root}
'@
$CertBase64 = @'
{cert}
'@
$Work = Join-Path $env:TEMP ('opsmgr-' + [guid]::NewGuid().ToString())
[void](New-Item -ItemType Directory -Path $Work)
$RootFile = Join-Path $Work 'root.cer'
$CertFile = Join-Path $Work ($Fqdn + '.cer')
[IO.File]::WriteAllBytes($RootFile, [Convert]::FromBase64String(($RootBase64 -replace '\s', '')))
[IO.File]::WriteAllBytes($CertFile, [Convert]::FromBase64String(($CertBase64 -replace '\s', '')))

# The root must be the one pinned when the CA was made.
$root = New-Object Security.Cryptography.X509Certificates.X509Certificate2($RootFile)
if ($root.Thumbprint -ne $RootThumbprint) {{
    Stop-Install {wrong_root} ('the root in this script is not {ca}''s (thumbprint ' + $root.Thumbprint + ', expected ' + $RootThumbprint + ')')
}}

# This machine must be the certificate's host: its host name and primary DNS suffix, as the
# TCP/IP settings hold them (a workgroup server: its name alone). Not the NetBIOS name, which
# is upper case and cut to 15 characters.
$ip = [Net.NetworkInformation.IPGlobalProperties]::GetIPGlobalProperties()
$Me = $ip.HostName
if ($ip.DomainName) {{ $Me = $ip.HostName + '.' + $ip.DomainName }}
if ($Me -ne $Fqdn) {{
    Stop-Install {wrong_host} ('this machine is ' + $Me + ', not ' + $Fqdn)
}}

# MOMCertImport.exe: in the agent's folder, beside this script (the seed's package carries
# it), or on the PATH; the agent's own folder first, which only administrators write.
$MomCertImport = $null
$here = Split-Path -Parent $MyInvocation.MyCommand.Path
$setup = Get-ItemProperty 'HKLM:\SOFTWARE\Microsoft\Microsoft Operations Manager\3.0\Setup' -ErrorAction SilentlyContinue
$candidates = @()
if ($setup -and $setup.InstallDirectory) {{ $candidates += (Join-Path $setup.InstallDirectory 'MOMCertImport.exe') }}
$candidates += (Join-Path $here 'MOMCertImport.exe')
foreach ($c in $candidates) {{ if (-not $MomCertImport -and (Test-Path $c)) {{ $MomCertImport = $c }} }}
if (-not $MomCertImport) {{
    $found = Get-Command 'MOMCertImport.exe' -ErrorAction SilentlyContinue
    if ($found) {{ $MomCertImport = $found.Definition }}
}}

if ($WhatIf) {{
    Write-Log ('check mode: every check passed; it would run:')
    Write-Log ('  certutil -addstore root ' + $RootFile)
    Write-Log ('  certreq -accept -q ' + $CertFile)
    if ($MomCertImport) {{
        Write-Log ('  ' + $MomCertImport + ' /SubjectName ' + $Fqdn)
        Write-Log '  net stop HealthService; net start HealthService'
    }} else {{
        Write-Log '  (MOMCertImport.exe was not found: no agent yet; it would stop there)'
    }}
    Remove-Item -Recurse -Force $Work
    exit {done}
}}

& certutil.exe -addstore root $RootFile 2>&1 | Out-File -Append -FilePath $Log -Encoding ASCII
if ($LASTEXITCODE -ne 0) {{ Stop-Install {addstore} ('certutil -addstore root failed (exit ' + $LASTEXITCODE + ')') }}
Write-Log ('trusted the root {ca} ({{0}})' -f $RootThumbprint)

& certreq.exe -accept -q $CertFile 2>&1 | Out-File -Append -FilePath $Log -Encoding ASCII
if ($LASTEXITCODE -ne 0) {{ Stop-Install {accept} ('certreq -accept failed (exit ' + $LASTEXITCODE + ')') }}
Write-Log 'accepted the certificate into the machine''s Personal store'

if (-not $MomCertImport) {{
    Stop-Install {no_mom} ('the root and the certificate are installed, but MOMCertImport.exe was found neither in the agent''s folder, nor beside this script, nor on the PATH: once the agent is installed, run MOMCertImport /SubjectName ' + $Fqdn)
}}
& $MomCertImport /SubjectName $Fqdn 2>&1 | Out-File -Append -FilePath $Log -Encoding ASCII
if ($LASTEXITCODE -ne 0) {{ Stop-Install {mom} ('MOMCertImport failed (exit ' + $LASTEXITCODE + ')') }}
Write-Log 'the agent uses the certificate'

& net.exe stop HealthService 2>&1 | Out-File -Append -FilePath $Log -Encoding ASCII
& net.exe start HealthService 2>&1 | Out-File -Append -FilePath $Log -Encoding ASCII
if ($LASTEXITCODE -ne 0) {{ Stop-Install {health} ('net start HealthService failed (exit ' + $LASTEXITCODE + ')') }}
Write-Log 'restarted the Health Service: done'
Remove-Item -Recurse -Force $Work
exit {done}
"#,
        ca = i.ca_name,
        id = i.request_id,
        pin = i.root_thumbprint.to_ascii_uppercase(),
        root = here(i.root),
        cert = here(i.certificate),
        done = InstallExit::Done.code(),
        usage = InstallExit::Usage.code(),
        admin = InstallExit::NotAdministrator.code(),
        wrong_root = InstallExit::WrongRoot.code(),
        wrong_host = InstallExit::WrongHost.code(),
        addstore = InstallExit::AddStore.code(),
        accept = InstallExit::Accept.code(),
        no_mom = InstallExit::NoMomCertImport.code(),
        mom = InstallExit::MomCertImport.code(),
        health = InstallExit::HealthService.code(),
        files = InstallExit::Files.code(),
    );
    Ok(script.replace('\n', "\r\n"))
}

/// Lines that write `der` as a PEM file `file` from cmd.exe (`echo` inside a redirected
/// block; base64 holds nothing cmd reads specially).
fn cmd_pem(file: &str, der: &[u8]) -> String {
    let mut out = format!("> \"%WORK%\\{file}\" (\n  echo -----BEGIN CERTIFICATE-----\n");
    for line in base64_lines(der) {
        out.push_str(&format!("  echo {line}\n"));
    }
    out.push_str("  echo -----END CERTIFICATE-----\n)\n");
    out
}

/// `<fqdn>.install.cmd`: the seed's installer for cmd.exe alone, CRLF.
pub fn install_cmd(i: &Installer<'_>) -> Result<String> {
    check_thumbprint(i.root_thumbprint)?;
    check_ca_name(i.ca_name)?;
    let host = i.host.as_str();
    let mut codes = String::new();
    for (code, what) in InstallExit::ALL {
        codes.push_str(&format!("rem   {:>2}  {what}\n", code.code()));
    }
    let script = format!(
        r#"@echo off
rem {host}.install.cmd: installs the certificate {ca} issued to {host} (request {id}), as
rem the seed's installer did: trust the root, accept the certificate, tell the agent to use it,
rem restart the agent. Made by om-ca; run it from the folder the CA's operator publishes,
rem never from the request share. cmd.exe alone; run it as an administrator:
rem   {host}.install.cmd [/check]
rem /check makes every check and changes nothing. Before the agent is installed it trusts the
rem root and accepts the certificate, and says to run MOMCertImport afterwards.
rem The log is %TEMP%\{host}.install.log.
rem Exit codes:
{codes}setlocal EnableExtensions DisableDelayedExpansion
set "FQDN={host}"
set "PIN={pin}"
set "LOG=%TEMP%\{host}.install.log"
set "WORK="
set "CHECK="
if /i "%~1"=="/check" set "CHECK=1"
if not "%~1"=="" if not defined CHECK (set "CODE={usage}" & set "WHY=usage: {host}.install.cmd [/check]" & goto :fail)
call :log "installing the certificate of {host} (request {id})"

rem Only an administrator may list filters (fltmc works without the Server service; it fails
rem with an HRESULT, a negative exit code).
fltmc >nul 2>&1
if not "%errorlevel%"=="0" (set "CODE={admin}" & set "WHY=run it as an administrator" & goto :fail)

set "WORK=%TEMP%\opsmgr-%RANDOM%-%RANDOM%"
mkdir "%WORK%" >nul 2>&1
if errorlevel 1 (set "CODE={files}" & set "WHY=the temporary folder could not be made" & goto :fail)
{root_pem}{cert_pem}certutil -f -decode "%WORK%\root.b64" "%WORK%\root.cer" >nul 2>&1
if not "%errorlevel%"=="0" (set "CODE={files}" & set "WHY=certutil -decode could not write the root" & goto :fail)
certutil -f -decode "%WORK%\cert.b64" "%WORK%\{host}.cer" >nul 2>&1
if not "%errorlevel%"=="0" (set "CODE={files}" & set "WHY=certutil -decode could not write the certificate" & goto :fail)

rem The root must be the one pinned when the CA was made: its SHA-1 thumbprint, the SHA-1 of
rem its file. certutil -hashfile prints it on its second line in every language; where it is
rem missing (Windows Server 2003), certutil -dump's "Cert Hash(sha1): ab cd ..." line.
set "HASH="
for /f "skip=1 delims=" %%h in ('certutil -hashfile "%WORK%\root.cer" 2^>nul') do if not defined HASH set "HASH=%%h"
if defined HASH set "HASH=%HASH: =%"
if /i "%HASH%"=="%PIN%" goto :pinned
set "HASH="
for /f "tokens=1,* delims=:" %%a in ('certutil -dump "%WORK%\root.cer" ^| findstr /b /c:"Cert Hash(sha1)"') do set "HASH=%%b"
if defined HASH set "HASH=%HASH: =%"
if /i not "%HASH%"=="%PIN%" (set "CODE={wrong_root}" & set "WHY=the root in this script is not {ca}'s, or certutil could not show its thumbprint" & goto :fail)
:pinned

rem This machine must be the certificate's host: its FQDN (a workgroup server's computer
rem name), from the TCP/IP settings.
set "NAME="
set "DOMAIN="
for /f "tokens=2,*" %%a in ('reg query "HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters" /v Hostname 2^>nul ^| findstr /i /c:"Hostname"') do set "NAME=%%b"
for /f "tokens=2,*" %%a in ('reg query "HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters" /v Domain 2^>nul ^| findstr /i /c:"Domain"') do set "DOMAIN=%%b"
set "ME=%NAME%"
if defined DOMAIN set "ME=%NAME%.%DOMAIN%"
if /i not "%ME%"=="%FQDN%" (set "CODE={wrong_host}" & set "WHY=this machine is not {host}" & goto :fail)

rem MOMCertImport.exe: in the agent's folder (only administrators write it), beside this
rem script (the seed's package carries it), or on the PATH; none: no agent yet.
set "MOMDIR="
for /f "tokens=2,*" %%a in ('reg query "HKLM\SOFTWARE\Microsoft\Microsoft Operations Manager\3.0\Setup" /v InstallDirectory 2^>nul ^| findstr /i /c:"InstallDirectory"') do set "MOMDIR=%%b"
if defined MOMDIR set "MOMCERT=%MOMDIR%\MOMCertImport.exe"
if defined MOMDIR if exist "%MOMCERT%" goto :found
set "MOMCERT=%~dp0MOMCertImport.exe"
if exist "%MOMCERT%" goto :found
set "MOMCERT="
for %%m in (MOMCertImport.exe) do set "MOMCERT=%%~$PATH:m"

:found
if defined CHECK goto :check

certutil -addstore root "%WORK%\root.cer" >>"%LOG%" 2>&1
if not "%errorlevel%"=="0" (set "CODE={addstore}" & set "WHY=certutil -addstore root failed" & goto :fail)
call :log "trusted the root {ca} ({pin})"
certreq -accept -q "%WORK%\{host}.cer" >>"%LOG%" 2>&1
if not "%errorlevel%"=="0" (set "CODE={accept}" & set "WHY=certreq -accept failed" & goto :fail)
call :log "accepted the certificate into the machine's Personal store"
if not defined MOMCERT (set "CODE={no_mom}" & set "WHY=the root and the certificate are installed, but MOMCertImport.exe was found neither in the agent's folder, nor beside this script, nor on the PATH: once the agent is installed, run MOMCertImport /SubjectName {host}" & goto :fail)
"%MOMCERT%" /SubjectName {host} >>"%LOG%" 2>&1
if not "%errorlevel%"=="0" (set "CODE={mom}" & set "WHY=MOMCertImport failed" & goto :fail)
call :log "the agent uses the certificate"
net stop HealthService >>"%LOG%" 2>&1
net start HealthService >>"%LOG%" 2>&1
if errorlevel 1 (set "CODE={health}" & set "WHY=net start HealthService failed" & goto :fail)
call :log "restarted the Health Service: done"
rd /s /q "%WORK%"
exit /b {done}

:check
if defined MOMCERT call :log "check mode: every check passed; it would run certutil -addstore root, certreq -accept, MOMCertImport /SubjectName {host}, net stop and net start HealthService"
if not defined MOMCERT call :log "check mode: every check passed; it would run certutil -addstore root and certreq -accept, then stop: MOMCertImport.exe was not found (no agent yet)"
rd /s /q "%WORK%"
exit /b {done}

:log
>>"%LOG%" echo %DATE% %TIME% %~1
echo %~1
exit /b 0

:fail
>>"%LOG%" echo %DATE% %TIME% FAILED (%CODE%): %WHY%
echo FAILED (%CODE%): %WHY% 1>&2
if defined WORK if exist "%WORK%" rd /s /q "%WORK%"
exit /b %CODE%
"#,
        ca = i.ca_name,
        id = i.request_id,
        pin = i.root_thumbprint.to_ascii_uppercase(),
        root_pem = cmd_pem("root.b64", i.root),
        cert_pem = cmd_pem("cert.b64", i.certificate),
        done = InstallExit::Done.code(),
        usage = InstallExit::Usage.code(),
        admin = InstallExit::NotAdministrator.code(),
        wrong_root = InstallExit::WrongRoot.code(),
        wrong_host = InstallExit::WrongHost.code(),
        addstore = InstallExit::AddStore.code(),
        accept = InstallExit::Accept.code(),
        no_mom = InstallExit::NoMomCertImport.code(),
        mom = InstallExit::MomCertImport.code(),
        health = InstallExit::HealthService.code(),
        files = InstallExit::Files.code(),
    );
    Ok(script.replace('\n', "\r\n"))
}

/// The key a kit's certreq.inf asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KitKey {
    /// RSA 2048 with the SChannel provider: every Windows from 2003 makes it.
    #[default]
    Rsa2048,
    /// RSA 4096 with the SChannel provider.
    Rsa4096,
}

// No ECDSA kit: Operations Manager's agent (MOMCertImport and the Health Service) reads keys
// of legacy CryptoAPI providers only, and Windows' ECDSA keys come from CNG providers.

/// A UNC path of the drop share (`\\ca01\certrequests`, `\\ca01.company.local\share$\in`),
/// validated so it can stand in a PowerShell single-quoted string and a cmd.exe quoted one:
/// a server name and folders of letters, digits and `. _ - $` and spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePath(String);

impl SharePath {
    /// Checks `text` is `\\server\share[\folder...]`.
    pub fn new(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::SharePath {
            share: crate::text::escape_control(text),
            problem: why.to_owned(),
        };
        let rest = text
            .strip_prefix("\\\\")
            .ok_or_else(|| bad("does not start with \\\\"))?;
        let parts: Vec<&str> = rest.trim_end_matches('\\').split('\\').collect();
        if parts.len() < 2 {
            return Err(bad("names no share after the server"));
        }
        crate::names::check_dns_name(parts[0])
            .map_err(|e| bad(&format!("names a server that is not a host name ({e})")))?;
        for part in &parts[1..] {
            let ok = !part.is_empty()
                && part.trim() == *part
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '$' | ' '))
                && *part != "."
                && *part != "..";
            if !ok {
                return Err(bad(&format!(
                    "has a folder '{}' with characters other than letters, digits, . _ - $ and spaces",
                    crate::text::escape_control(part)
                )));
            }
        }
        Ok(Self(format!("\\\\{}", parts.join("\\"))))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The agent kit: the agent's request policy and the scripts that make and drop the request.
#[derive(Debug, Clone)]
pub struct AgentKit {
    /// `certreq.inf`, with `<FQDN>` where the scripts put the machine's name.
    pub inf: String,
    /// `request.ps1`.
    pub request_ps1: String,
    /// `request.cmd`.
    pub request_cmd: String,
}

/// `>>"%INF%" echo(LINE` for each line of `inf`, its placeholder as `%FQDN%`: refused when a
/// line holds a character cmd.exe would read (`& | < > ^ %` or parentheses), which the kit's
/// own lines never do.
fn cmd_echo_lines(inf: &str) -> Result<String> {
    let mut out = String::new();
    for line in inf.lines() {
        let text = line.replace(FQDN_PLACEHOLDER, "");
        if text
            .chars()
            .any(|c| matches!(c, '&' | '|' | '<' | '>' | '^' | '%' | '(' | ')') || c.is_control())
        {
            return Err(Error::certificate(format!(
                "the kit's certreq.inf line '{}' cannot be written by cmd.exe",
                crate::text::escape_control(line)
            )));
        }
        out.push_str(&format!(
            ">>\"%INF%\" echo({}\n",
            line.replace(FQDN_PLACEHOLDER, "%FQDN%")
        ));
    }
    Ok(out)
}

/// The kit's placeholder for the machine's FQDN in its certreq.inf.
pub const FQDN_PLACEHOLDER: &str = "<FQDN>";

/// The agent kit for a CA named `ca_name` whose share is `share`.
pub fn agent_kit(share: &SharePath, key: KitKey, ca_name: &str) -> Result<AgentKit> {
    check_ca_name(ca_name)?;
    let bits = match key {
        KitKey::Rsa2048 => 2048,
        KitKey::Rsa4096 => 4096,
    };
    // The SChannel provider (a legacy CryptoAPI one, which the agent reads) and an exchange
    // key, as the seed's INF has them.
    let key_lines = format!(
        "KeyAlgorithm = RSA\nKeyLength = {bits}\nKeySpec = 1\nKeyUsage = 0xa0\nProviderName = \"Microsoft RSA SChannel Cryptographic Provider\"\nProviderType = 12\n"
    );
    let inf = format!(
        "; certreq.inf for an agent of the management group, from the {ca_name} CA's policy, by om-ca agent-kit.\n\
         ; request.ps1 or request.cmd puts this machine's FQDN in place of {FQDN_PLACEHOLDER}, runs\n\
         ; certreq -new -q -f <FQDN>.inf <FQDN>.req and copies the request to {share}.\n\
         [Version]\n\
         Signature = \"$Windows NT$\"\n\
         \n\
         [NewRequest]\n\
         Subject = \"CN={FQDN_PLACEHOLDER}\"\n\
         {key_lines}\
         HashAlgorithm = SHA256\n\
         MachineKeySet = TRUE\n\
         ; The seed: \"Microsoft states that the private key must be exportable\".\n\
         Exportable = TRUE\n\
         RequestType = PKCS10\n\
         \n\
         [EnhancedKeyUsageExtension]\n\
         OID = 1.3.6.1.5.5.7.3.1 ; Server Authentication\n\
         OID = 1.3.6.1.5.5.7.3.2 ; Client Authentication\n",
        share = share.as_str()
    );
    // The FQDN check both scripts make: a DNS host name, labels of letters, digits and
    // hyphens, dots between.
    let request_ps1 = format!(
        r#"# request.ps1: makes this machine's certificate request for the {ca} CA and drops it in
# the share, as the seed's agents did: certreq -new -q -f certreq.inf <FQDN>.req, the file
# named by the machine's FQDN. Made by om-ca agent-kit. PowerShell 2.0 (1.0 too); run it as
# an administrator, from the folder holding certreq.inf:
#   powershell -ExecutionPolicy Bypass -File request.ps1
# Exit codes: 0 dropped, 1 the FQDN is not a DNS host name, 2 certreq failed, 3 the copy failed.
$Share = '{share}'
$here = Split-Path -Parent $MyInvocation.MyCommand.Path
$ip = [Net.NetworkInformation.IPGlobalProperties]::GetIPGlobalProperties()
$Fqdn = $ip.HostName
if ($ip.DomainName) {{ $Fqdn = $ip.HostName + '.' + $ip.DomainName }}
if ($Fqdn -notmatch '^(?=.{{1,253}}$)[A-Za-z0-9]([A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?)*$') {{
    Write-Host ('this machine''s name ' + $Fqdn + ' is not a DNS host name: set its DNS suffix first')
    exit 1
}}
$inf = Join-Path $env:TEMP ($Fqdn + '.inf')
$req = Join-Path $env:TEMP ($Fqdn + '.req')
(Get-Content (Join-Path $here 'certreq.inf')) -replace '{placeholder}', $Fqdn | Set-Content -Path $inf -Encoding ASCII
# No request of an earlier run is left to be copied if certreq fails.
if (Test-Path $req) {{ Remove-Item -Force $req }}
& certreq.exe -new -q -f $inf $req
if ($LASTEXITCODE -ne 0) {{ Write-Host ('certreq -new failed (exit ' + $LASTEXITCODE + ')'); exit 2 }}
if (-not (Test-Path $req)) {{ Write-Host 'certreq -new wrote no request'; exit 2 }}
Copy-Item -Path $req -Destination (Join-Path $Share ($Fqdn + '.req')) -Force -ErrorAction SilentlyContinue
if (-not $?) {{ Write-Host ('the request could not be copied to ' + $Share); exit 3 }}
Write-Host ('dropped ' + $Fqdn + '.req in ' + $Share + ': once it is issued, run ' + $Fqdn + '.install.ps1 from the folder the CA''s operator publishes')
exit 0
"#,
        ca = ca_name,
        share = share.as_str(),
        placeholder = FQDN_PLACEHOLDER,
    )
    .replace('\n', "\r\n");
    let request_cmd = format!(
        r#"@echo off
rem request.cmd: makes this machine's certificate request for the {ca} CA and drops it in the
rem share, as the seed's agents did: certreq -new -q -f certreq.inf <FQDN>.req, the file named
rem by the machine's FQDN. Made by om-ca agent-kit. cmd.exe alone; run it as an
rem administrator. Exit codes: 0 dropped, 1 the FQDN is not a DNS host name, 2 certreq
rem failed, 3 the copy failed.
setlocal EnableExtensions DisableDelayedExpansion
set "SHARE={share}"
set "NAME="
set "DOMAIN="
for /f "tokens=2,*" %%a in ('reg query "HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters" /v Hostname 2^>nul ^| findstr /i /c:"Hostname"') do set "NAME=%%b"
for /f "tokens=2,*" %%a in ('reg query "HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters" /v Domain 2^>nul ^| findstr /i /c:"Domain"') do set "DOMAIN=%%b"
if not defined NAME (echo this machine's host name could not be read & exit /b 1)
set "FQDN=%NAME%"
if defined DOMAIN set "FQDN=%NAME%.%DOMAIN%"
echo %FQDN%| findstr /r /x /c:"[A-Za-z0-9][A-Za-z0-9.-]*[A-Za-z0-9]" >nul
if errorlevel 1 (echo this machine's name is not a DNS host name: set its DNS suffix first & exit /b 1)
echo %FQDN%| findstr /c:".." /c:".-" /c:"-." >nul
if not errorlevel 1 (echo this machine's name is not a DNS host name: set its DNS suffix first & exit /b 1)
set "INF=%TEMP%\%FQDN%.inf"
set "REQ=%TEMP%\%FQDN%.req"
rem certreq.inf (the kit's, this machine's FQDN in it), written line by line; no request of
rem an earlier run is left to be copied if certreq fails.
if exist "%INF%" del /q "%INF%"
if exist "%REQ%" del /q "%REQ%"
{inf_lines}certreq -new -q -f "%INF%" "%REQ%"
if not "%errorlevel%"=="0" (echo certreq -new failed & exit /b 2)
if not exist "%REQ%" (echo certreq -new wrote no request & exit /b 2)
copy /y "%REQ%" "%SHARE%\%FQDN%.req" >nul
if errorlevel 1 (echo the request could not be copied to the share & exit /b 3)
echo dropped %FQDN%.req in the share: once it is issued, run %FQDN%.install.cmd from the folder the CA's operator publishes
exit /b 0
"#,
        ca = ca_name,
        share = share.as_str(),
        inf_lines = cmd_echo_lines(&inf)?,
    )
    .replace('\n', "\r\n");
    Ok(AgentKit {
        inf: inf.replace('\n', "\r\n"),
        request_ps1,
        request_cmd,
    })
}
