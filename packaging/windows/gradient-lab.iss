; Inno Setup script: a Windows installer from the bundle dist\gradient-lab\ (build_bundle.sh).
;   ISCC.exe /DAppVersion=0.1.0 packaging\windows\gradient-lab.iss   -> dist\gradient-lab-setup-0.1.0.exe
; Installs for all users into Program Files (read-only: numba caches in %LOCALAPPDATA%).
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{6F0D7C1E-3B7A-4D1B-9B7E-6A3C2D1E9F40}
AppName=Gradient Lab
AppVersion={#AppVersion}
AppPublisher=Gradient Lab
DefaultDirName={autopf}\Gradient Lab
DefaultGroupName=Gradient Lab
DisableProgramGroupPage=yes
PrivilegesRequired=admin
PrivilegesRequiredOverridesAllowed=dialog commandline
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
; Qt 6.11 supports Windows 10 1809 (build 17763) and later
MinVersion=10.0.17763
OutputDir=..\..\dist
OutputBaseFilename=gradient-lab-setup-{#AppVersion}
SetupIconFile=..\..\build\gradient-lab.ico
UninstallDisplayIcon={app}\gradient-lab.exe
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern

[Files]
Source: "..\..\dist\gradient-lab\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Gradient Lab"; Filename: "{app}\gradient-lab.exe"
Name: "{autodesktop}\Gradient Lab"; Filename: "{app}\gradient-lab.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; Flags: unchecked

[Run]
Filename: "{app}\gradient-lab.exe"; Description: "{cm:LaunchProgram,Gradient Lab}"; Flags: nowait postinstall skipifsilent
