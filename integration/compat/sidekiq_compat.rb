# frozen_string_literal: true

# Sidekiq against dkv, driven by integration/tests/sidekiq.rs in three steps
# around two real `sidekiq` processes (which load sidekiq_jobs.rb):
#
#   ruby sidekiq_compat.rb push    LEADER_URL FOLLOWER_URL   (before they start)
#   ruby sidekiq_compat.rb work    LEADER_URL FOLLOWER_URL   (while they run)
#   ruby sidekiq_compat.rb stopped LEADER_URL FOLLOWER_URL   (after SIGTERM)
#
# The Sidekiq API (Stats, Queue, ProcessSet, Workers, RetrySet, DeadSet) runs
# on the follower; jobs are pushed through both nodes. Every step has its own
# deadline and exits non-zero with the reason on the first failed check.

require "sidekiq"
require "sidekiq/api"
require "json"

Redis.silence_deprecations = true # redis-rb 4.8 warns on every SADD

STEP_DEADLINE = 60 # seconds

def clock
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

T0 = clock

def fail!(msg)
  warn "FAIL: #{msg}"
  exit 1
end

def check(cond, msg)
  fail!(msg) unless cond
  puts "ok #{msg}"
end

# Polls the block until it returns a truthy value; fails with `what` (and
# what `detail` says then) at the deadline.
def wait_for(what, timeout: STEP_DEADLINE - (clock - T0), detail: nil)
  until_t = clock + [timeout, 0.5].max
  loop do
    v = yield
    return v if v
    fail!("timed out waiting for #{what} #{detail&.call}") if clock > until_t
    sleep 0.1
  end
end

step, leader_url, follower_url = ARGV
fail!("usage: sidekiq_compat.rb push|work|stopped LEADER_URL FOLLOWER_URL") unless leader_url && follower_url

Sidekiq.configure_client { |c| c.redis = {url: follower_url, size: 2} }
Sidekiq.logger.level = Logger::WARN
leader = Sidekiq::Client.new(ConnectionPool.new(size: 1) { Redis.new(url: leader_url) })
follower = Sidekiq::Client.new(ConnectionPool.new(size: 1) { Redis.new(url: follower_url) })
raw = Redis.new(url: follower_url)

# Job ids pushed before the processes start, and while they run.
EARLY = (0...100).map { |i| "lead#{i}" } + (0...200).map { |i| "bulk#{i}" } + (0...50).map { |i| "crit#{i}" }
LATE = (0...150).map { |i| "late#{i}" }
PLAIN = EARLY + LATE + ["sched0", "block0"]

case step
when "push"
  raw.flushall
  # One job per Client#push through the leader (SADD queues + LPUSH, pipelined).
  EARLY.grep(/\Alead/).each do |id|
    jid = leader.push("class" => "RecordJob", "args" => [id])
    fail!("push #{id} returned no jid") unless jid.is_a?(String) && jid.size == 24
  end
  # push_bulk through the follower: one LPUSH of 200 payloads.
  jids = follower.push_bulk("class" => "RecordJob", "args" => EARLY.grep(/\Abulk/).map { |id| [id] })
  check(jids.size == 200 && jids.uniq.size == 200, "push_bulk of 200 jobs through the follower")
  jids = leader.push_bulk("class" => "CriticalJob", "queue" => "critical",
    "args" => EARLY.grep(/\Acrit/).map { |id| [id] })
  check(jids.size == 50, "push_bulk of 50 jobs to queue critical through the leader")
  # A scheduled job (ZADD schedule), due in 1 s: the poller moves it.
  jid = follower.push("class" => "RecordJob", "args" => ["sched0"], "at" => Time.now.to_f + 1)
  sched = Sidekiq::ScheduledSet.new.find_job(jid)
  check(sched && sched.at > Time.now - 5 && sched.at < Time.now + 5 && sched.args == ["sched0"],
    "a scheduled job waits in the schedule ZSET (ScheduledSet#find_job: ZSCAN)")
  flaky = leader.push("class" => "FlakyJob", "args" => ["flaky0"])
  parked = follower.push("class" => "ParkedJob", "args" => ["parked0"])
  # The client does not load the job classes, so their sidekiq_options do not
  # reach the payload: retry: 0 is given here.
  doomed = leader.push("class" => "DoomedJob", "args" => ["doomed0"], "retry" => 0)
  raw.set("t:jid:flaky", flaky)
  raw.set("t:jid:parked", parked)
  raw.set("t:jid:doomed", doomed)
  check(Sidekiq::Queue.new("default").size == 303 && Sidekiq::Queue.new("critical").size == 50,
    "queue sizes (LLEN) 303 default, 50 critical")
  check(Sidekiq::Queue.all.map(&:name).sort == %w[critical default], "Sidekiq::Queue.all from the queues SET")
  stats = Sidekiq::Stats.new
  check(stats.enqueued == 353 && stats.scheduled_size == 1 && stats.processes_size == 0,
    "Sidekiq::Stats before any worker: enqueued 353, scheduled 1, processes 0")
  first = Sidekiq::Queue.new("critical").first
  check(first && first.klass == "CriticalJob" && first.args.first =~ /\Acrit/, "Queue#first reads a job payload")
  puts "pushed #{353 + 1} jobs in #{(clock - T0).round(2)} s"

when "work"
  # Both processes beat: the processes SET and each process hash.
  procs = wait_for("two heartbeats in the processes SET") {
    ps = Sidekiq::ProcessSet.new.to_a
    ps if ps.map(&:tag).sort == %w[on-follower on-leader]
  }
  procs.each do |p|
    check(p["beat"] > Time.now.to_f - 30 && p["beat"] <= Time.now.to_f + 5,
      "#{p.tag}: beat #{p["beat"].round(1)} is recent")
    check(p["quiet"] == "false" && p["busy"].is_a?(Integer) && p["concurrency"] == 5 &&
      p["queues"].sort == %w[critical default] && p["pid"].is_a?(Integer),
      "#{p.tag}: process hash (quiet false, busy, concurrency 5, queues)")
    check(raw.ttl(p.identity).between?(1, 60), "#{p.tag}: its hash expires (EXPIRE 60)")
  end
  # More jobs while they run: BRPOP wakes the workers on both nodes.
  LATE.each_slice(50).with_index do |ids, i|
    client = i.even? ? follower : leader
    client.push_bulk("class" => "RecordJob", "args" => ids.map { |id| [id] })
  end
  leader.push("class" => "BlockerJob", "args" => ["block0"])
  # The blocked worker shows up in a heartbeat: busy 1 and a Workers entry.
  wait_for("a heartbeat with busy >= 1 and the BlockerJob in Sidekiq::Workers") {
    busy = Sidekiq::ProcessSet.new.any? { |p| p["busy"] >= 1 }
    work = Sidekiq::Workers.new.to_a.any? { |_process, _thread, w| (w["payload"]["class"] rescue nil) == "BlockerJob" }
    busy && work
  }
  puts "ok a heartbeat reports the busy worker (busy >= 1, Sidekiq::Workers)"
  raw.set("t:release", "1")

  missing = -> { "(not done: #{(PLAIN - raw.smembers("t:done")).first(10)})" }
  wait_for("every plain job done", detail: missing) { raw.scard("t:done") >= PLAIN.size && PLAIN.all? { |id| raw.sismember("t:done", id) } }
  check(true, "#{PLAIN.size} plain jobs done (#{EARLY.size} pushed before the processes started)")
  runs = raw.mget(*PLAIN.map { |id| "t:runs:#{id}" })
  twice = PLAIN.zip(runs).reject { |_id, n| n == "1" }
  check(twice.empty?, "every plain job ran exactly once (no crash, so basic fetch is exactly-once): #{twice.first(5)}")

  # The flaky job: failed, was put in the retry ZSET with its error, came back
  # through the poller, succeeded.
  flaky = raw.get("t:jid:flaky")
  wait_for("the flaky job to succeed on its retry") { raw.sismember("t:done", "flaky0") }
  attempts = raw.lrange("t:attempt:#{flaky}", 0, -1).map { |j| JSON.parse(j) }
  check(attempts.size == 2 && raw.get("t:runs:flaky0") == "2", "flaky job ran twice (fail, then retry)")
  retried = attempts[1]
  check(retried["retry_count"] == 0 && retried["error_class"] == "ArgumentError" &&
    retried["error_message"] == "flaky flaky0 failed on attempt 1" && retried["failed_at"].is_a?(Float),
    "its retry carried retry_count 0 and the error Sidekiq stored in the retry ZSET")

  # The parked job waits in the retry ZSET; retry it by hand.
  parked = raw.get("t:jid:parked")
  entry = wait_for("the parked job in the retry ZSET") { Sidekiq::RetrySet.new.find_job(parked) }
  check(entry["error_class"] == "IOError" && entry["error_message"] == "parked parked0 failed on attempt 1" &&
    entry["retry_count"] == 0 && entry.at > Time.now + 3000,
    "RetrySet: the parked job with its error, due in an hour")
  check(Sidekiq::RetrySet.new.size == 1, "RetrySet size 1 (ZCARD retry)")
  entry.retry
  check(Sidekiq::RetrySet.new.size == 0, "SortedEntry#retry took it out of the retry ZSET")
  wait_for("the parked job to succeed after Retry Now") { raw.sismember("t:done", "parked0") }
  check(raw.get("t:runs:parked0") == "2", "parked job ran twice")

  # The doomed job (retry: 0) is in the dead ZSET.
  doomed = raw.get("t:jid:doomed")
  dead = wait_for("the doomed job in the dead ZSET") { Sidekiq::DeadSet.new.find_job(doomed) }
  check(dead["error_class"] == "RuntimeError" && dead["error_message"] == "doomed doomed0" &&
    raw.get("t:runs:doomed0") == "1", "DeadSet: the doomed job ran once and died with its error")

  by = {"on-leader" => raw.get("t:by:on-leader").to_i, "on-follower" => raw.get("t:by:on-follower").to_i}
  puts "RecordJobs worked per process: #{by}"
  check(by.values.sum == PLAIN.size - 50 - 1, "RecordJob count per process adds up (all but 50 critical and the blocker)")

  # Stats: processed counts every execution, failed every failure (flushed by heartbeats).
  executions = PLAIN.size + 2 + 2 + 1
  stats = wait_for("Stats processed #{executions}, failed 3") {
    s = Sidekiq::Stats.new
    s if s.processed == executions && s.failed == 3
  }
  check(stats.enqueued == 0 && stats.retry_size == 0 && stats.dead_size == 1 && stats.scheduled_size == 0,
    "Sidekiq::Stats: processed #{executions}, failed 3, nothing enqueued, 1 dead")
  check(Sidekiq::Stats::History.new(1).processed.values.first == executions, "Stats::History (stat:processed:<date>)")

  # Quiet the follower's process through Redis (LPUSH <identity>-signals TSTP):
  # its next heartbeat RPOPs the signal.
  p = Sidekiq::ProcessSet.new.find { |x| x.tag == "on-follower" }
  p.quiet!
  wait_for("the follower's process to report quiet") {
    Sidekiq::ProcessSet.new.find { |x| x.tag == "on-follower" && x["quiet"] == "true" }
  }
  puts "ok quiet! reached the process through its signals list"
  puts "all checks passed in #{(clock - T0).round(2)} s"

when "stopped"
  # SIGTERM: each process removes itself from the processes SET on the way out.
  check(raw.scard("processes") == 0, "processes SET empty after both processes stopped")
  check(Sidekiq::ProcessSet.new.size == 0, "ProcessSet empty")
  puts "all checks passed"
else
  fail!("unknown step #{step}")
end
