"""What a person does to accounts from the accounts screen: import, log in (or again), refresh,
link, export, unlink, use in a tool, rename, choose a profile or mode, copy a token, remove.

Each action asks a question on a screen of its own when it needs one, then asks the engine
from a worker; what changed comes back as the engine's events, which the accounts screen
(tui/screens/accounts.py, a subclass of `AccountFlows`) repaints. The flows are kept apart
from the screen's reading and painting so each stays one idea.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.notifications import SeverityLevel
from textual.screen import Screen

from kiro_tui.core.config import Settings
from kiro_tui.core.errors import KiroTuiError
from kiro_tui.core.events import KiroCliState
from kiro_tui.core.importer import ImportReport, first_login_hint
from kiro_tui.core.login import LoginRequest
from kiro_tui.core.models import Account, AccountView, AuthMethod, Mode, Outcome, PlaceRole, Status
from kiro_tui.core.places import LINK_KINDS, USE_KINDS
from kiro_tui.core.summary import printable
from kiro_tui.tui import format as fmt
from kiro_tui.tui import messages
from kiro_tui.tui.clipboard import copy_text
from kiro_tui.tui.host import Host, host
from kiro_tui.tui.screens.choice import ChoiceScreen, LoadingChoiceScreen
from kiro_tui.tui.screens.confirm import ConfirmScreen
from kiro_tui.tui.screens.device_code import AGAIN, DeviceCodeScreen, profile_options
from kiro_tui.tui.screens.login_form import LoginFormScreen
from kiro_tui.tui.screens.name_prompt import NamePromptScreen
from kiro_tui.tui.screens.path_prompt import PathPromptScreen
from kiro_tui.tui.status_tally import StatusTally

if TYPE_CHECKING:
    from textual.worker import Worker

    from kiro_tui.core.aws.codewhisperer import Profile
    from kiro_tui.core.engine import Engine
    from kiro_tui.tui.widgets.accounts_table import AccountsTable

MODE_HELP = {
    Mode.SYNC: "sync — refresh, and write the new token back into kiro-cli",
    Mode.FOLLOW: "follow — never refresh; mirror kiro-cli's database",
    Mode.OWN: "own — refresh independently; never touch kiro-cli",
}


class AccountFlows(Screen[None]):
    """The accounts screen's actions (its `action_*` methods and the workers behind them)."""

    views: dict[str, AccountView]
    tally: StatusTally
    profiles_cache: dict[str, Profile]
    profile_counts: dict[str, int]
    kiro_cli: KiroCliState

    if TYPE_CHECKING:  # what the flows read of the screen (tui/screens/accounts.py)
        @property
        def table(self) -> AccountsTable: ...

        def selected(self) -> Account | None: ...

        def selected_view(self) -> AccountView | None: ...

        def visible_views(self) -> list[AccountView]: ...

        def shown(self, view: AccountView) -> bool: ...

        def load_tools(self) -> Worker[None]: ...

        def update_summary(self, now: datetime) -> None: ...

    @property
    def host(self) -> Host:
        return host(self)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Toasts carry account names, paths and server errors: plain text unless asked (the app
        makes them printable)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # ------------------------------------------------------------------ import

    def action_import(self) -> None:
        self.choose_import()

    @work(group="import", exclusive=True, exit_on_error=False, description="import")
    async def choose_import(self) -> None:
        """kiro-cli at once when it is the only place holding logins; else every place found,
        with how many logins each holds (kiro-cli first), and all of them."""
        try:
            known = await self.host.engine_thread.call(lambda engine: engine.known_places())
        except KiroTuiError as exc:
            self.post_message(messages.ImportFailed(str(exc), automatic=False))
            return
        found = [s for s in known if s.found and s.logins]
        if not any(s.kind != "kiro-cli" for s in found):
            self.import_from(None, "kiro-cli")
            return
        options = [(f"{s.kind}\t{s.path}",
                    f"{fmt.place_title(s.kind):<16} {s.logins:>2} login{'s' if s.logins != 1 else ' '}"
                    f"  {fmt.home_relative(s.path) if s.path else '-'}") for s in found]
        options.append(("all\t", f"{'Everything above':<16} {sum(s.logins for s in found):>2} logins"))
        unfound = ", ".join(fmt.place_title(s.kind) for s in known if s.path is None)
        chosen = await self.app.push_screen_wait(ChoiceScreen(
            "Import from", options, "Logins kiro-tui found; one credential is one account, however many "
            "places hold it." + (f"\nNot looked for: {unfound} (kiro-tui cannot find them by itself; "
                                 "`kiro-tui sources` says how to name them)." if unfound else "")))
        if chosen:
            kind, _, path = chosen.partition("\t")
            self.import_from(Path(path) if path else None, kind)

    @work(group="import-run", exclusive=True, exit_on_error=False, description="import")
    async def import_from(self, path: Path | None, kind: str) -> None:
        """The engine announces the import itself (ImportFinished): only a failure is said here."""
        try:
            await self.host.engine_thread.call(lambda engine: engine.import_now(path, kind))
        except KiroTuiError as exc:
            self.post_message(messages.ImportFailed(str(exc), automatic=False))

    def on_import_finished(self, message: messages.ImportFinished) -> None:
        report, automatic = message.event.report, message.event.automatic
        self.ask_kiro_cli_state()
        kinds = {kind for kind, _ in report.sources} or {report.kind}
        where = fmt.place_title(next(iter(kinds))) if len(kinds) == 1 else "every place found"
        if not automatic and not report.imported and not report.skipped:
            self.notify(f"no login in {fmt.home_relative(report.source)}; {first_login_hint(report.kind)}",
                        title="Import failed", severity="error", timeout=10)
        elif not automatic:
            self.notify(describe_import(report), title=f"Imported from {where}",
                        severity="warning" if report.skipped else "information")
        elif report.changed:
            self.notify(describe_import(report), title=f"{where} changed")
        self.update_summary(self.host.clock.now())

    def on_import_failed(self, message: messages.ImportFailed) -> None:
        if not message.automatic:
            self.notify(message.error, title="Import failed", severity="error", timeout=10)
        self.ask_kiro_cli_state()

    @work(group="kiro-cli-state", exclusive=True, exit_on_error=False, description="where kiro-cli's database is")
    async def ask_kiro_cli_state(self) -> None:
        """After an import or a failed one: the engine says where kiro-cli's database is, when it
        read it and whether it could (the summary line shows it)."""
        try:
            self.kiro_cli = await self.host.engine_thread.call(kiro_cli_state)
        except KiroTuiError:
            return  # no engine: the summary already says so
        self.update_summary(self.host.clock.now())

    # ---------------------------------------------- copies in other tools: link, export, unlink, use

    def action_places(self) -> None:
        view = self.selected_view()
        if view is not None:
            self.choose_place(view)

    @work(group="places", exclusive=True, exit_on_error=False, description="link, export or unlink")
    async def choose_place(self, view: AccountView) -> None:
        """Link (kept fresh after every refresh), export (written once), or unlink a copy."""
        name = view.account.name
        options = [(f"link\t{kind}", f"Link to {fmt.place_title(kind)}") for kind in LINK_KINDS]
        options += [(f"export\t{kind}", f"Export to {fmt.place_title(kind)} (once)") for kind in LINK_KINDS]
        options += [(f"unlink\t{p.path}", f"Unlink {fmt.place_title(p.kind)}  {fmt.home_relative(Path(p.path))}")
                    for p in view.places if p.role is PlaceRole.LINK]
        chosen = await self.app.push_screen_wait(ChoiceScreen(
            f"Copies of {name}", options, "A link is written now and after every refresh, in that tool's own "
            "format; an export is written once."))
        if not chosen:
            return
        what, _, target = chosen.partition("\t")
        if what == "unlink":
            question = Text.assemble(
                "Stop keeping ", (printable(fmt.home_relative(Path(target))), "bold"), " fresh for ",
                (printable(name), "bold"), "?\n\n",
                "The file is left as it is: the login in it expires unless that tool refreshes it itself.")
            if not await self.app.push_screen_wait(ConfirmScreen(question, "Unlink")):
                return
            self.edit(lambda engine: engine.unlink(view.id, target), f"{name}: {fmt.home_relative(Path(target))} "
                      "is no longer kept fresh (the file is left as it is).", "Unlinked")
            return
        default = await self.host.engine_thread.call(lambda engine: engine.usual_place(target))
        path = await self.app.push_screen_wait(PathPromptScreen(
            f"{'Link' if what == 'link' else 'Export'} {name} to {fmt.place_title(target)}",
            "The file, or a folder to create it in:", str(default) if default else ""))
        if not path:
            return
        chosen_path = Path(path).expanduser()  # noqa: ASYNC240 - reads $HOME, touches no file
        caveat = await self.host.engine_thread.call(lambda engine: engine.caveat(view.id, target))
        warning = f" Note: {caveat}." if caveat else ""
        if what == "link":
            self.edit(lambda engine: engine.link(view.id, target, chosen_path),
                      f"{name} is kept fresh in {fmt.place_title(target)} ({fmt.home_relative(chosen_path)})."
                      f"{warning}",
                      "Linked")
        else:
            self.edit(lambda engine: engine.export(view.id, target, chosen_path),
                      f"{name} was written to {fmt.home_relative(chosen_path)} (once).{warning}", "Exported")

    def action_use(self) -> None:
        view = self.selected_view()
        if view is not None:
            self.choose_use(view)

    @work(group="places", exclusive=True, exit_on_error=False, description="use an account in a tool")
    async def choose_use(self, view: AccountView) -> None:
        """The tools found where they keep their login, and whose login each holds now; or another file."""
        name = view.account.name
        try:
            tools = await self.host.engine_thread.call(lambda engine: engine.tools_found())
        except KiroTuiError as exc:
            self.notify(str(exc), title="Use in", severity="error", timeout=10)
            return
        options = []
        for tool in tools:
            holder = self.views.get(tool.holder or "")
            now = ("already this one" if tool.holder == view.id else f"now {holder.account.name}" if holder
                   else "now a login kiro-tui has not seen")
            options.append((f"{tool.kind}\t{tool.path}", f"{fmt.place_title(tool.kind):<16} {now}"))
        options.append(("other\t", "Another file…"))
        chosen = await self.app.push_screen_wait(ChoiceScreen(
            f"Use {name} in", options, "Its whole login replaces the one there; that one is kept (imported if "
            "new, and a copy of the file), still refreshed, so switching back finds it alive."))
        if not chosen:
            return
        kind, _, path = chosen.partition("\t")
        if kind == "other":
            picked = await self.app.push_screen_wait(ChoiceScreen(
                f"Use {name} in", [(k, fmt.place_title(k)) for k in USE_KINDS], "Which tool's file?"))
            if not picked:
                return
            kind = picked
            default = await self.host.engine_thread.call(lambda engine: engine.usual_place(picked))
            typed = await self.app.push_screen_wait(PathPromptScreen(
                f"Use {name} in {fmt.place_title(kind)}", "The file the tool reads:", str(default) if default else ""))
            if not typed:
                return
            path = typed
        target = Path(path).expanduser()  # noqa: ASYNC240 - reads $HOME, touches no file
        try:
            outcome = await self.host.engine_thread.call(lambda engine: engine.use(view.id, kind, target))
        except KiroTuiError as exc:
            self.notify(str(exc), title="Use in", severity="error", timeout=10)
            return
        kept = "".join(f" {self.views[i].account.name if i in self.views else i} is kept, still refreshed."
                       for i, _ in outcome.previous)
        self.notify(f"{name} is now the login in {fmt.place_title(kind)} ({fmt.home_relative(outcome.path)})."
                    + kept, title="Use in")
        self.load_tools()

    # --------------------------- one account: name, refresh, login, profile, mode, copy, remove

    def action_rename(self) -> None:
        account = self.selected()
        if account is not None:
            self.app.push_screen(NamePromptScreen(f"Name for {account.name}", account.nickname or ""),
                                 callback=lambda name: self.rename_chosen(account, name))

    def rename_chosen(self, account: Account, name: str | None) -> None:
        if name is None or name == (account.nickname or ""):
            return
        self.edit(lambda engine: engine.rename(account.id, name),
                  f"{account.id} is now called {name}." if name else f"{account.id} has no name now.", "Name")

    def action_refresh(self) -> None:
        account = self.selected()
        if account is not None:
            self.refresh_accounts([account.id], announce=True)

    def action_refresh_all(self) -> None:
        self.refresh_accounts(list(self.views), announce=False)

    @work(group="refresh", exit_on_error=False, description="refresh now")
    async def refresh_accounts(self, account_ids: list[str], announce: bool) -> None:
        """Through the engine's scheduler: the same concurrency bound as background refreshes."""
        try:
            results = await self.host.engine_thread.call(lambda engine: engine.refresh_now(account_ids))
        except KiroTuiError as exc:
            self.notify(str(exc), title="Cannot refresh", severity="error", timeout=15)
            return
        failed = [r for r in results if r.outcome is Outcome.FAILED]
        if announce and results:
            result = results[0]
            view = self.views.get(result.account_id)
            name = view.account.name if view else (result.label or result.account_id)  # the label may be ""
            if result.outcome is Outcome.FAILED or result.status.is_alert:
                self.notify(result.message or result.status.label, title="Refresh failed", severity="error")
            elif result.outcome is Outcome.SKIPPED:
                self.notify(result.message or "nothing to do", title=name)
            elif result.expires_at is not None:  # "followed; expired 16 seconds ago (follow mode: …)"
                expiry = fmt.expiry_phrase(result.expires_at, self.host.clock.now())
                self.notify(f"{result.outcome.value}; {expiry}" + (
                    f" ({result.message})" if result.message else ""), title=name)
        elif not announce:
            waiting = [r for r in results if r.outcome is Outcome.FOLLOWED and r.status is Status.EXPIRED]
            said = [f"{len(results) - len(failed) - len(waiting)} refreshed or up to date"]
            if waiting:  # nothing kiro-tui did or could do: say so, and where the way out is
                said.append(f"{len(waiting)} waiting for kiro-cli (follow mode, expired; enter on it offers "
                            "re-import)")
            self.notify(", ".join([*said, f"{len(failed)} failed"]), title="Refresh all",
                        severity="warning" if failed or waiting else "information")

    def action_login(self, prefill: LoginRequest | None = None) -> None:
        self.start_login(prefill)

    @work(group="login-ui", exclusive=True, exit_on_error=False, description="log in")
    async def start_login(self, prefill: LoginRequest | None) -> None:
        if prefill is None:
            try:
                prefill = await self.host.engine_thread.call(_last_login_request)
            except KiroTuiError:
                prefill = LoginRequest()
        held_before = set(self.views)  # read now: the engine's re-read may show the new account first
        while True:  # the device screen can send the person back to the form after a failure
            request = await self.app.push_screen_wait(LoginFormScreen(prefill))
            if request is None:
                return
            if prefill.replaces:
                request = replace(request, replaces=prefill.replaces)
            account = await self.app.push_screen_wait(DeviceCodeScreen(request))
            if account != AGAIN:
                break
            prefill = request
        if not isinstance(account, Account):
            return
        renewed = account.id in held_before  # an account it already held (asked first, if another's)
        self.views[account.id] = AccountView(account)  # shown at once; the engine's re-read follows
        self.tally.update({account.id}, self.views, self.host.clock.now())
        self.table.update_rows(frozenset({account.id}), self.views, self.shown, self.host.clock.now())
        if account.id in self.table.accounts:
            self.table.move_cursor(row=self.table.get_row_index(account.id))
        meant = self.views.get(request.replaces or "")
        if meant is not None and meant.id != account.id:
            saved = f"{account.name}'s account is renewed" if renewed else f"{account.name} is saved as its own account"
            self.notify(f"You signed in as {account.name}, not {meant.account.name}: {meant.account.name} still "
                        f"needs a login. {saved}.",
                        title="Someone else signed in", severity="warning", timeout=15)
            return
        self.notify(f"{account.name} is ready; kiro-tui keeps it fresh.", title="Logged in")

    def action_profile(self) -> None:
        account = self.selected()
        if account is not None:
            self.choose_profile(account)

    @work(group="profile", exclusive=True, exit_on_error=False, description="choose a profile")
    async def choose_profile(self, account: Account) -> None:
        picker = LoadingChoiceScreen(f"Profile for {account.name}",
                                     "Profiles this login may use, from every profile region:")
        self.app.push_screen(picker, callback=lambda arn: self.profile_chosen(account, arn))
        try:
            listing = await self.host.engine_thread.call(lambda engine: engine.account_profiles(account.id))
        except KiroTuiError as exc:
            picker.fail(str(exc))
            return
        if not listing.profiles:
            picker.fail("This login has no profiles (Builder ID logins usually have none).")
            return
        self.profiles_cache = {p.arn: p for p in listing.profiles}
        self.profile_counts[account.id] = len(listing.profiles)
        picker.fill(profile_options(listing.profiles, account.profile_arn), account.profile_arn)

    def profile_chosen(self, account: Account, arn: str | None) -> None:
        profile = self.profiles_cache.get(arn) if arn else None
        if profile is not None:
            self.edit(lambda engine: engine.set_profile(account.id, profile),
                      f"{account.name} now uses {profile.name} ({profile.region}).", "Profile")

    @work(group="edit", exit_on_error=False, description="change an account")
    async def edit(self, change: Callable[[Engine], Awaitable[object]], done: str, title: str) -> None:
        """A change a person asked for, made by the engine (it owns the store)."""
        try:
            await self.host.engine_thread.call(change)
        except KiroTuiError as exc:
            self.notify(str(exc), title=title, severity="error", timeout=10)
            return
        self.notify(done, title=title)

    def action_mode(self) -> None:
        account = self.selected()
        if account is None:
            return
        modes = account.allowed_modes
        explanation = "" if len(modes) > 1 else "Only own applies: this login is not in kiro-cli's database."
        self.app.push_screen(
            ChoiceScreen(f"Mode for {account.name}", [(m.value, MODE_HELP[m]) for m in modes], explanation,
                         highlighted=account.mode.value, current=account.mode.value),
            callback=lambda chosen: self.mode_chosen(account, chosen),
        )

    def mode_chosen(self, account: Account, chosen: str | None) -> None:
        if chosen is None or chosen == account.mode.value:
            return
        mode = Mode(chosen)
        self.edit(lambda engine: engine.set_mode(account.id, mode), f"{account.name}: {MODE_HELP[mode]}", "Mode")

    def action_copy_token(self) -> None:
        account = self.selected()
        if account is None:
            return
        question = Text.assemble(
            "Copy the access token of ", (printable(account.name), "bold"), "?\n\n",
            "Anyone who can paste it can act as this account until it expires "
            f"({fmt.expiry_phrase(account.expires_at, self.host.clock.now())}).")
        self.app.push_screen(ConfirmScreen(question, "Copy"), callback=lambda ok: self.copy_confirmed(account, ok))

    def copy_confirmed(self, account: Account, ok: bool | None) -> None:
        if ok:
            how = copy_text(self.app, account.access_token)
            self.notify(f"The access token of {account.name} was {how}.", title="Copied")

    def action_remove(self) -> None:
        view = self.selected_view()
        if view is None:
            return
        account = view.account
        question = Text.assemble(
            "Remove ", (printable(account.name), "bold"), " from kiro-tui?\n\n",
            which_account(view, self.host.clock.now(), self.host.settings), "\n\n",
            "Its tokens are deleted from kiro-tui's store. kiro-cli's own login is not touched, and "
            "importing again will not bring this login back (a new login there will).")
        self.app.push_screen(ConfirmScreen(question, "Remove"), callback=lambda ok: self.remove_confirmed(account, ok))

    def remove_confirmed(self, account: Account, ok: bool | None) -> None:
        if ok:
            self.views.pop(account.id, None)
            self.tally.update({account.id}, self.views, self.host.clock.now())
            self.table.update_rows(frozenset({account.id}), self.views, self.shown,
                                   self.host.clock.now())
            self.edit(lambda engine: engine.remove(account.id), f"Removed {account.name}.", "Removed")

    # ---------------------------------------------- the fixes for a login that needs a person

    def action_resolve(self) -> None:
        view = self.selected_view()
        account = view.account if view else None
        if view is None or account is None or not self.check_action("resolve", ()):
            return
        if fmt.waits_for_kiro_cli(view, self.host.clock.now(), self.host.settings.window):
            self.app.push_screen(
                ChoiceScreen(f"{account.name} waits for kiro-cli", [
                    ("reimport", "Re-import from kiro-cli (once kiro-cli has run and refreshed it)"),
                    ("sync", MODE_HELP[Mode.SYNC].replace("sync —", "Switch to sync mode:", 1)),
                ], "Follow mode: kiro-tui never refreshes this login; it mirrors kiro-cli's database, and "
                   "kiro-cli refreshes the login when it next runs."),
                callback=lambda chosen: self.resolve_chosen(account, chosen),
            )
            return
        options = []
        if account.source:
            options.append(("import", "Re-import from kiro-cli (after `kiro-cli login`)"))
        options.append(("login", "Log in again with a device code"))
        self.app.push_screen(
            ChoiceScreen(f"{account.name} needs a login",
                         options, fmt.short_reason(account.last_error) or "Its refresh token no longer works."),
            callback=lambda chosen: self.resolve_chosen(account, chosen),
        )

    def resolve_chosen(self, account: Account, chosen: str | None) -> None:
        if chosen == "import":
            self.action_import()
        elif chosen == "reimport":
            self.import_from(Path(account.source) if account.source else None, "kiro-cli")
        elif chosen == "sync":
            self.mode_chosen(account, Mode.SYNC.value)
        elif chosen == "login":
            start_url = account.start_url if account.auth_method is AuthMethod.IDC else None
            self.action_login(LoginRequest(start_url, account.region, replaces=account.id))

async def _last_login_request(engine: Engine) -> LoginRequest:
    return engine.last_login_request()


def which_account(view: AccountView, now: datetime, settings: Settings) -> Text:
    """What tells this account apart from another with the same email: its id, its login
    (kind, portal, region, profile), where it came from, and how it is now."""
    account = view.account
    login = [account.auth_method.label + (f" ({account.provider})" if account.provider else "")]
    if account.start_url and account.auth_method is AuthMethod.IDC:
        login.append(account.start_url.removeprefix("https://").split(".")[0])
    login.append(account.region)
    if account.profile_name or account.profile_arn:
        login.append(f"profile {fmt.profile_label(account)}")
    sources = [p for p in view.places if p.role is PlaceRole.SOURCE]
    if sources:
        entry = f" ({sources[0].entry})" if sources[0].entry else ""
        origin = f"imported from {fmt.place_title(sources[0].kind)}{entry}"
    elif account.source_key:
        origin = f"imported from kiro-cli ({account.source_key})"
    else:
        origin = "logged in with kiro-tui"
    status = view.status(now, settings.window, settings.quota_warning)
    rows = (("id", account.id), ("login", ", ".join(login)), ("from", origin),
            ("status", f"{status.label}, {fmt.expiry_phrase(account.expires_at, now)}"))
    text = Text()
    for label, value in rows:
        text.append(f"  {label:<8}", style="bold")
        text.append(printable(value) + ("\n" if label != "status" else ""))
    return text


def describe_import(report: ImportReport) -> str:
    counts: dict[str, int] = {}
    for item in report.imported:
        counts[item.action] = counts.get(item.action, 0) + 1
    parts = [f"{n} {action}" for action, n in counts.items()] or ["no logins"]
    if report.skipped:
        first = report.skipped[0]
        parts.append(f"{len(report.skipped)} skipped ({first.key or fmt.home_relative(Path(first.path or ''))}: "
                     f"{first.reason})")
    if report.missing:
        parts.append(f"{len(report.missing)} kept (no longer there)")
    return ", ".join(parts)


async def kiro_cli_state(engine: Engine) -> KiroCliState:
    """The engine call that says where kiro-cli's database is and whether it could be read."""
    return engine.kiro_cli_state()
