// Imports and exports: upload a CSV, see the dry run row by row, run it, follow its progress
// live, download its artifacts and error report; start exports and reports.
import { useState } from "react";
import { useMutation, useQuery, useSubscription } from "urql";
import { graphql } from "../gql";
import type { ConsoleJobQuery, JobKind } from "../gql/graphql";
import { useCan } from "../role";
import { downloadArtifact, uploadArtifact, type ApiError } from "../session";
import { ErrorBanner, Field, Pager, ShowGraphQL, UserErrors, newKey, usePager, when } from "../ui";

export const JOB_FIELDS = graphql(`
  fragment JobFields on Job {
    id
    kind
    status
    progress
    processedRows
    totalRows
    errorCount
    errors
    result
    params
    createdAt
    finishedAt
    artifacts {
      id
      name
      purpose
      sizeBytes
      contentType
    }
  }
`);

const START = graphql(`
  mutation ConsoleStartJob($input: StartJobInput!, $key: String) {
    startJob(input: $input, idempotencyKey: $key) {
      job {
        ...JobFields
      }
      userErrors {
        code
        field
        message
      }
    }
  }
`);

const JOB = graphql(`
  query ConsoleJob($id: ID!) {
    job(id: $id) {
      ...JobFields
    }
  }
`);

const JOB_UPDATED = graphql(`
  subscription ConsoleJobUpdated($id: ID!) {
    jobUpdated(id: $id) {
      ...JobFields
    }
  }
`);

const JOBS = graphql(`
  query ConsoleJobs($first: Int!, $after: String, $filter: JobFilter) {
    jobs(first: $first, after: $after, filter: $filter) {
      nodes {
        ...JobFields
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

type Job = NonNullable<ConsoleJobQuery["job"]>;
type Change = { row: number; sku: string; location?: string; action: string; before?: number; after?: number; fields?: string[] };
type RowError = { row?: number; column?: string; code: string; message: string };

const IMPORTS: JobKind[] = ["IMPORT_ITEMS", "IMPORT_STOCK_COUNTS"];
const EXPORTS: JobKind[] = ["EXPORT_STOCK_LEVELS", "EXPORT_MOVEMENTS", "REPORT_LOW_STOCK", "REPORT_MOVEMENT_SUMMARY"];

export function Imports() {
  const [file, setFile] = useState<File | null>(null);
  const [kind, setKind] = useState<JobKind>("IMPORT_ITEMS");
  const [policy, setPolicy] = useState<"REJECT_EVERYTHING" | "REJECT_FAILED_ROWS">("REJECT_EVERYTHING");
  const [artifact, setArtifact] = useState<{ id: string; name: string } | null>(null);
  const [uploadError, setUploadError] = useState<ApiError | Error | null>(null);
  const [jobId, setJobId] = useState<string | null>(null);
  const [started, start] = useMutation(START);
  const [exportKind, setExportKind] = useState<JobKind>("EXPORT_STOCK_LEVELS");
  const can = useCan();
  if (!can.write) {
    return (
      <>
        <p className="note">Imports and exports need the operator role or above; recent jobs are shown.</p>
        <RecentJobs onOpen={() => undefined} />
      </>
    );
  }

  const run = async (dryRun: boolean) => {
    setUploadError(null);
    let uploaded = artifact;
    if (!uploaded && file) {
      try {
        uploaded = await uploadArtifact(file);
        setArtifact(uploaded);
      } catch (err) {
        setUploadError(err as Error);
        return;
      }
    }
    if (!uploaded) return;
    const response = await start({
      key: newKey(),
      input: { kind, inputArtifact: uploaded.id, params: { dryRun, errorPolicy: policy } },
    });
    const job = response.data?.startJob.job;
    if (job) setJobId(job.id);
  };

  return (
    <section aria-label="imports and exports">
      <form className="card" aria-label="import a CSV" onSubmit={(e) => e.preventDefault()}>
        <h2>Import a CSV</h2>
        <div className="row">
          <Field label="File">
            <input
              type="file"
              accept=".csv,text/csv"
              onChange={(e) => {
                setFile(e.target.files?.[0] ?? null);
                setArtifact(null);
                setJobId(null);
              }}
            />
          </Field>
          <Field label="Kind">
            <select value={kind} onChange={(e) => setKind(e.target.value as JobKind)}>
              {IMPORTS.map((k) => (
                <option key={k}>{k}</option>
              ))}
            </select>
          </Field>
          <Field label="When rows fail">
            <select value={policy} onChange={(e) => setPolicy(e.target.value as typeof policy)}>
              <option value="REJECT_EVERYTHING">reject everything</option>
              <option value="REJECT_FAILED_ROWS">apply the good rows</option>
            </select>
          </Field>
          <button type="button" disabled={!file || started.fetching} onClick={() => run(true)}>
            Dry run
          </button>
          <button type="button" className="primary" disabled={!file || started.fetching} onClick={() => run(false)}>
            Run import
          </button>
        </div>
        <ErrorBanner error={uploadError ?? started.error} />
        <UserErrors errors={started.data?.startJob.userErrors} />
      </form>
      {jobId && <JobView key={jobId} id={jobId} />}
      <form className="card" aria-label="export or report" onSubmit={(e) => e.preventDefault()}>
        <h2>Export or report</h2>
        <div className="row">
          <Field label="Kind">
            <select value={exportKind} onChange={(e) => setExportKind(e.target.value as JobKind)}>
              {EXPORTS.map((k) => (
                <option key={k}>{k}</option>
              ))}
            </select>
          </Field>
          <button
            type="button"
            onClick={async () => {
              const response = await start({ key: newKey(), input: { kind: exportKind } });
              const job = response.data?.startJob.job;
              if (job) setJobId(job.id);
            }}
          >
            Start
          </button>
        </div>
      </form>
      <RecentJobs onOpen={setJobId} />
    </section>
  );
}

/** One job, followed live (the subscription), with the query as the fallback. */
function JobView({ id }: { id: string }) {
  const [{ data, error }] = useQuery({ query: JOB, variables: { id }, requestPolicy: "network-only" });
  const [{ data: live }] = useSubscription({ query: JOB_UPDATED, variables: { id } });
  const job: Job | null | undefined = live?.jobUpdated ?? data?.job;
  const [downloadError, setDownloadError] = useState<Error | null>(null);
  if (!job) return <ErrorBanner error={error} />;
  const result = (job.result ?? {}) as Record<string, unknown>;
  const changes = (result.changes as Change[] | undefined) ?? [];
  const errors = (Array.isArray(job.errors) ? job.errors : []) as RowError[];
  const dryRun = Boolean((job.params as Record<string, unknown> | null)?.dryRun);
  return (
    <section className="panel" aria-label="job" data-job={job.id} data-status={job.status}>
      <header className="panel-head">
        <h2>
          {job.kind}
          {dryRun ? " (dry run)" : ""}: <span className="job-status">{job.status}</span>
        </h2>
      </header>
      <progress max={1} value={job.progress} aria-label="progress" />{" "}
      <span>
        {job.processedRows}
        {job.totalRows != null ? ` of ${job.totalRows}` : ""} rows · {job.errorCount} errors
      </span>
      {Object.keys(result).length > 0 && (
        <dl className="counts">
          {["rows", "created", "updated", "changed", "unchanged", "failed", "applied", "wouldApply"].map((k) =>
            k in result ? (
              <div key={k}>
                <dt>{k}</dt>
                <dd data-count={k}>{String(result[k])}</dd>
              </div>
            ) : null,
          )}
        </dl>
      )}
      {changes.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption>What the import would change, row by row</caption>
            <thead>
              <tr>
                <th scope="col">Row</th>
                <th scope="col">SKU</th>
                <th scope="col">Location</th>
                <th scope="col">Action</th>
                <th scope="col">Before</th>
                <th scope="col">After</th>
                <th scope="col">Fields</th>
              </tr>
            </thead>
            <tbody>
              {changes.map((c) => (
                <tr key={`${c.row}-${c.sku}`} data-row={c.row}>
                  <td>{c.row}</td>
                  <td>{c.sku}</td>
                  <td>{c.location ?? ""}</td>
                  <td>{c.action}</td>
                  <td>{c.before ?? ""}</td>
                  <td>{c.after ?? ""}</td>
                  <td>{c.fields?.join(", ") ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {errors.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption>Rows refused</caption>
            <thead>
              <tr>
                <th scope="col">Row</th>
                <th scope="col">Column</th>
                <th scope="col">Code</th>
                <th scope="col">Message</th>
              </tr>
            </thead>
            <tbody>
              {errors.map((e, i) => (
                <tr key={i}>
                  <td>{e.row ?? ""}</td>
                  <td>{e.column ?? ""}</td>
                  <td>
                    <code>{e.code}</code>
                  </td>
                  <td>{e.message}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {job.artifacts.length > 0 && (
        <ul className="artifacts" aria-label="artifacts">
          {job.artifacts.map((a) => (
            <li key={a.id}>
              <button
                type="button"
                className="link"
                onClick={() => downloadArtifact(a.id, a.name).catch((err) => setDownloadError(err))}
              >
                Download {a.name}
              </button>{" "}
              <span className="muted">
                {a.purpose} · {a.sizeBytes} bytes
              </span>
            </li>
          ))}
        </ul>
      )}
      <ErrorBanner error={downloadError} />
      <ShowGraphQL document={JOB_UPDATED} variables={{ id }} />
    </section>
  );
}

function RecentJobs({ onOpen }: { onOpen: (id: string) => void }) {
  const pager = usePager();
  const variables = { first: 10, after: pager.after };
  const [{ data, error }, refetch] = useQuery({ query: JOBS, variables });
  return (
    <section className="panel" aria-label="recent jobs">
      <header className="panel-head">
        <h2>Recent jobs</h2>
        <button type="button" onClick={() => refetch({ requestPolicy: "network-only" })}>
          Refresh
        </button>
      </header>
      <ErrorBanner error={error} />
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Kind</th>
              <th scope="col">Status</th>
              <th scope="col">Rows</th>
              <th scope="col">Created</th>
              <th scope="col">Finished</th>
            </tr>
          </thead>
          <tbody>
            {data?.jobs.nodes.map((j) => (
              <tr key={j.id}>
                <td>
                  <button type="button" className="link" onClick={() => onOpen(j.id)}>
                    {j.kind}
                  </button>
                </td>
                <td>{j.status}</td>
                <td>{j.processedRows}</td>
                <td>{when(j.createdAt)}</td>
                <td>{when(j.finishedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager pager={pager} pageInfo={data?.jobs.pageInfo} />
      <ShowGraphQL document={JOBS} variables={variables} />
    </section>
  );
}
