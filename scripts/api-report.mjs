// API reports: runs API Extractor (api-extractor.json) once per package entry point over the built declarations in
// dist/, comparing each with its report in etc/. Without --local (CI), a report that no longer matches fails the
// run: the public API changed and the change must be reviewed. With --local (`npm run api`), the reports are
// rewritten. Any warning fails either way.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Extractor, ExtractorConfig, ExtractorLogLevel } from '@microsoft/api-extractor';
import ts from 'typescript';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const local = process.argv.includes('--local');

/** Entry point (import path) -> built declaration file and report name (etc/<name>.api.md). */
const entries = [
  { entry: 'sidecarless', dts: 'dist/index.d.ts', report: 'sidecarless' },
  { entry: 'sidecarless/extend', dts: 'dist/extend.d.ts', report: 'sidecarless-extend' },
  { entry: 'sidecarless/prometheus', dts: 'dist/exporters/prometheus.d.ts', report: 'sidecarless-prometheus' },
  { entry: 'sidecarless/opentelemetry', dts: 'dist/exporters/opentelemetry.d.ts', report: 'sidecarless-opentelemetry' },
  { entry: 'sidecarless/zookeeper', dts: 'dist/zookeeper.d.ts', report: 'sidecarless-zookeeper' },
];

// `stripInternal` removes `@internal` declarations from dist/: a shipped declaration that still names one no longer
// compiles for users with `skipLibCheck: false`. Check every shipped .d.ts before reading the entry points.
checkDeclarations();

const configFile = path.join(root, 'api-extractor.json');
const base = ExtractorConfig.loadFile(configFile);
// The subpath entries name the root entry's types (Client, PickerPolicy, ...) without re-exporting them: a
// "forgotten export" of a type the root entry exports is expected there. Any other is an error, as in the root.
const rootExports = exportedNames(path.join(root, 'dist/index.d.ts'));
let failed = 0;
for (const { entry, dts, report } of entries) {
  if (!existsSync(path.join(root, dts))) {
    console.error(`api: ${dts} is missing; run \`npm run build\` first`);
    process.exit(1);
  }
  const config = ExtractorConfig.prepare({
    configObject: {
      ...base,
      mainEntryPointFilePath: `<projectFolder>/${dts}`,
      apiReport: { ...base.apiReport, reportFileName: report },
    },
    configObjectFullPath: configFile,
    packageJsonFullPath: path.join(root, 'package.json'),
  });
  const result = Extractor.invoke(config, {
    localBuild: local,
    showVerboseMessages: false,
    messageCallback(message) {
      const forgotten = /The symbol "([^"]+)" needs to be exported/.exec(message.text);
      if (message.messageId === 'ae-forgotten-export' && entry !== 'sidecarless' && rootExports.has(forgotten?.[1])) {
        message.logLevel = ExtractorLogLevel.None;
        message.handled = true;
      }
      // With --local, rewriting a report is what was asked for, not a warning.
      if (local && ['console-api-report-copied', 'console-api-report-created'].includes(message.messageId)) {
        message.logLevel = ExtractorLogLevel.Info;
      }
    },
  });
  const ok = result.succeeded && result.errorCount === 0 && result.warningCount === 0;
  if (!ok) failed++;
  const what = result.apiReportChanged ? (local ? 'report updated' : 'API CHANGED, report not updated') : 'unchanged';
  console.log(
    `api: ${entry}: ${what}; ${result.errorCount} errors, ${result.warningCount} warnings (etc/${report}.api.md)`,
  );
}
if (failed > 0) {
  console.error(
    local
      ? 'api: fix the errors and warnings above'
      : 'api: the public API differs from etc/*.api.md; run `npm run api` and commit the reports if the change is intended',
  );
  process.exit(1);
}

/** The names a built entry point exports. */
function exportedNames(dtsFile) {
  const program = ts.createProgram([dtsFile], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(dtsFile);
  return new Set(checker.getExportsOfModule(checker.getSymbolAtLocation(file)).map((symbol) => symbol.name));
}

/** Type-checks every .d.ts in dist/ on its own (no skipLibCheck); exits on an error. */
function checkDeclarations() {
  const dist = path.join(root, 'dist');
  if (!existsSync(dist)) {
    console.error('api: dist/ is missing; run `npm run build` first');
    process.exit(1);
  }
  const files = readdirSync(dist, { recursive: true })
    .filter((file) => String(file).endsWith('.d.ts'))
    .map((file) => path.join(dist, String(file)));
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2023,
    lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts', 'lib.dom.d.ts'],
    types: ['node'],
    strict: true,
    noEmit: true,
  });
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName.startsWith(dist));
  if (diagnostics.length > 0) {
    const host = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => root, getNewLine: () => '\n' };
    console.error(ts.formatDiagnostics(diagnostics, host));
    console.error(
      `api: ${diagnostics.length} errors in the built declarations (an @internal declaration still named?)`,
    );
    process.exit(1);
  }
}
