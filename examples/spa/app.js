// Browser client for the jwt2fa user API: sign-up, email verification,
// login with JSON Web Tokens, profile editing and logout.
// Plain script without modules or a build step, so it runs from any static file server.
(function () {
  "use strict";

  const DEFAULT_API_BASE = "/api/users/";
  const ACCESS_TOKEN_KEY = "jwt2fa.access";
  const REFRESH_TOKEN_KEY = "jwt2fa.refresh";

  const NETWORK_ERROR_MESSAGE = "Could not reach the server. Check your connection and try again.";
  const SESSION_ENDED_MESSAGE = "Your session has ended. Please log in again.";
  const LOGGED_OUT_MESSAGE = "You are logged out.";

  const VIEW_TITLES = {
    register: "Sign up",
    verify: "Verify your email",
    login: "Log in",
    profile: "Your profile",
  };

  // ---------------------------------------------------------------------------
  // Errors

  // Thrown when fetch() rejects: the server is unreachable, the connection
  // dropped, or the browser blocked the response (for example by CORS).
  class NetworkError extends Error {
    constructor() {
      super(NETWORK_ERROR_MESSAGE);
      this.name = "NetworkError";
    }
  }

  // Thrown for an HTTP error status, or for a success status whose body is not
  // the JSON that the endpoint documents. `body` is the parsed JSON, or
  // undefined when the body is empty or not JSON.
  class ApiError extends Error {
    constructor(status, body, retryAfterSeconds) {
      super(`HTTP ${status}`);
      this.name = "ApiError";
      this.status = status;
      this.body = body;
      this.retryAfterSeconds = retryAfterSeconds;
    }
  }

  // Thrown after the session was ended and the login view is shown, so callers
  // stop without showing a second error message.
  class SessionEndedError extends Error {
    constructor() {
      super("The session has ended.");
      this.name = "SessionEndedError";
    }
  }

  // ---------------------------------------------------------------------------
  // Token storage

  // In-memory fallback for browsers that reject localStorage access, such as
  // some private browsing modes. Tokens stored there are lost on reload.
  const memoryStorage = new Map();

  function readStoredValue(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (error) {
      return memoryStorage.has(key) ? memoryStorage.get(key) : null;
    }
  }

  function writeStoredValue(key, value) {
    try {
      if (value === null) {
        window.localStorage.removeItem(key);
      } else {
        window.localStorage.setItem(key, value);
      }
    } catch (error) {
      if (value === null) {
        memoryStorage.delete(key);
      } else {
        memoryStorage.set(key, value);
      }
    }
  }

  function readTokens() {
    return {
      access: readStoredValue(ACCESS_TOKEN_KEY),
      refresh: readStoredValue(REFRESH_TOKEN_KEY),
    };
  }

  function storeTokens(tokens) {
    writeStoredValue(ACCESS_TOKEN_KEY, tokens.access);
    writeStoredValue(REFRESH_TOKEN_KEY, tokens.refresh);
  }

  function clearTokens() {
    writeStoredValue(ACCESS_TOKEN_KEY, null);
    writeStoredValue(REFRESH_TOKEN_KEY, null);
  }

  function hasTokens() {
    const tokens = readTokens();
    return Boolean(tokens.access || tokens.refresh);
  }

  // ---------------------------------------------------------------------------
  // HTTP

  // Reads the API base from <meta name="jwt2fa-api-base"> and resolves it
  // against the page URL. The result always ends with "/" so that endpoint
  // paths such as "login/" are appended to it rather than replacing its last segment.
  function resolveApiBase() {
    const meta = document.querySelector('meta[name="jwt2fa-api-base"]');
    const configured = meta && meta.content.trim() ? meta.content.trim() : DEFAULT_API_BASE;
    const base = new URL(configured, document.baseURI).href;
    return base.endsWith("/") ? base : `${base}/`;
  }

  const apiBase = resolveApiBase();

  function parseJson(text) {
    if (text === "") {
      return undefined;
    }
    try {
      return JSON.parse(text);
    } catch (error) {
      return undefined;
    }
  }

  // Converts a Retry-After header value to whole seconds. The header is either
  // a number of seconds or an HTTP date.
  // Returns null when the header is missing or invalid.
  function parseRetryAfter(value) {
    if (value === null) {
      return null;
    }
    const trimmed = value.trim();
    if (/^\d+$/.test(trimmed)) {
      return Number(trimmed);
    }
    const date = Date.parse(trimmed);
    if (Number.isNaN(date)) {
      return null;
    }
    return Math.max(0, Math.ceil((date - Date.now()) / 1000));
  }

  // Sends one request to the API and returns the parsed JSON body of a 2xx
  // response. Throws NetworkError or ApiError. `body` is sent as JSON when it
  // is not undefined, and `accessToken` as a Bearer token when it is set.
  async function sendRequest(method, path, { body, accessToken } = {}) {
    const headers = { Accept: "application/json" };
    const init = {
      method,
      headers,
      // Authentication uses the Authorization header only, so cookies are never needed.
      credentials: "omit",
      // Profile data is personal, so the HTTP cache must not keep it.
      cache: "no-store",
    };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (accessToken) {
      headers.Authorization = `Bearer ${accessToken}`;
    }

    let response;
    let text;
    try {
      response = await fetch(new URL(path, apiBase).href, init);
      text = await response.text();
    } catch (error) {
      throw new NetworkError();
    }

    const data = parseJson(text);
    if (!response.ok) {
      const retryAfterSeconds = parseRetryAfter(response.headers.get("Retry-After"));
      throw new ApiError(response.status, data, retryAfterSeconds);
    }
    return data;
  }

  function isPlainObject(value) {
    return typeof value === "object" && value !== null && !Array.isArray(value);
  }

  // Checks that a success body is a JSON object whose `stringKeys` are strings,
  // and throws an ApiError that reports an unexpected response otherwise.
  function expectObject(data, status, stringKeys) {
    const valid = isPlainObject(data) && stringKeys.every((key) => typeof data[key] === "string");
    if (!valid) {
      throw new ApiError(status, undefined, null);
    }
    return data;
  }

  // ---------------------------------------------------------------------------
  // Authenticated requests and token refresh

  // The refresh request in flight, shared by every caller that needs new tokens,
  // because the server rotates refresh tokens. A second refresh with the same
  // token can be rejected, which would end the session.
  let refreshPromise = null;

  function refreshTokens() {
    if (refreshPromise === null) {
      refreshPromise = performRefresh().finally(() => {
        refreshPromise = null;
      });
    }
    return refreshPromise;
  }

  // A 400, 401 or 403 from token/refresh/ means that the server rejected the
  // refresh token. Other failures (network, 429, 5xx) may be temporary, so the
  // tokens are kept and the error is shown instead of ending the session.
  function isRefreshRejected(error) {
    return error instanceof ApiError && [400, 401, 403].includes(error.status);
  }

  // Exchanges the stored refresh token for a new pair, stores the pair and
  // returns it. Ends the session and throws SessionEndedError when there is no
  // refresh token or the server rejects it.
  async function performRefresh() {
    const sentRefreshToken = readTokens().refresh;
    if (!sentRefreshToken) {
      endSession(SESSION_ENDED_MESSAGE);
      throw new SessionEndedError();
    }

    let data;
    try {
      data = await sendRequest("POST", "token/refresh/", { body: { refresh: sentRefreshToken } });
    } catch (error) {
      if (!isRefreshRejected(error)) {
        throw error;
      }
      const current = readTokens();
      if (current.refresh && current.refresh !== sentRefreshToken) {
        // Another tab rotated the pair while this request was in flight, so
        // the sent refresh token was rejected but the stored pair is newer.
        return current;
      }
      if (current.refresh === sentRefreshToken) {
        endSession(SESSION_ENDED_MESSAGE);
      }
      throw new SessionEndedError();
    }

    const tokens = expectObject(data, 200, ["access", "refresh"]);
    if (!hasTokens()) {
      // The tokens were cleared while the refresh was in flight, for example
      // by a logout, so the new pair must not log the person back in.
      throw new SessionEndedError();
    }
    storeTokens({ access: tokens.access, refresh: tokens.refresh });
    return { access: tokens.access, refresh: tokens.refresh };
  }

  // Sends a request with the stored access token. On a 401 it refreshes the
  // token pair once and retries the request once. `body` is a value, or a
  // function that builds the body for each attempt, which lets logout send
  // the refresh token that is current after a refresh.
  async function sendAuthenticated(method, path, body) {
    const buildBody = typeof body === "function" ? body : () => body;

    let accessToken = readTokens().access;
    if (!accessToken) {
      accessToken = (await refreshTokens()).access;
    }

    try {
      return await sendRequest(method, path, { body: buildBody(), accessToken });
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) {
        throw error;
      }
    }

    // The access token expired or was revoked. When another request refreshed
    // the pair in the meantime, the stored access token is already new.
    const stored = readTokens();
    const retryAccessToken = stored.access && stored.access !== accessToken
      ? stored.access
      : (await refreshTokens()).access;

    try {
      return await sendRequest(method, path, { body: buildBody(), accessToken: retryAccessToken });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        // A freshly issued access token was rejected, so a further refresh cannot help.
        endSession(SESSION_ENDED_MESSAGE);
        throw new SessionEndedError();
      }
      throw error;
    }
  }

  // ---------------------------------------------------------------------------
  // Error messages

  // Flattens a DRF error value (a string, a list, or a nested object) into messages.
  function collectMessages(value) {
    if (typeof value === "string") {
      return [value];
    }
    if (Array.isArray(value)) {
      return value.flatMap(collectMessages);
    }
    if (isPlainObject(value)) {
      return Object.values(value).flatMap(collectMessages);
    }
    return [];
  }

  // Formats a wait in the largest unit that keeps it readable.
  function formatRetryAfter(seconds) {
    if (seconds < 60) {
      return seconds === 1 ? "Try again in 1 second." : `Try again in ${seconds} seconds.`;
    }
    const minutes = Math.ceil(seconds / 60);
    if (minutes < 60) {
      return minutes === 1 ? "Try again in 1 minute." : `Try again in ${minutes} minutes.`;
    }
    const hours = Math.ceil(minutes / 60);
    return hours === 1 ? "Try again in 1 hour." : `Try again in ${hours} hours.`;
  }

  // Turns an error into the messages shown to the person.
  // Returns { fieldMessages: [[fieldName, [message, ...]], ...], generalMessages: [message, ...] }.
  // Request-level errors have the DRF shape {"detail": "...", "code": "..."}, where
  // `code` is a machine-readable reason and not a field. Validation errors map field
  // names, including non_field_errors, to lists of messages.
  function describeError(error) {
    const fieldMessages = [];
    const generalMessages = [];

    if (error instanceof NetworkError) {
      generalMessages.push(NETWORK_ERROR_MESSAGE);
      return { fieldMessages, generalMessages };
    }
    if (!(error instanceof ApiError)) {
      // This branch receives only programming errors, such as a TypeError. No error
      // in this file is built from a request body or a token, so logging it exposes neither.
      console.error("Unexpected error in the jwt2fa page:", error);
      generalMessages.push("Something went wrong in this page. Reload the page and try again.");
      return { fieldMessages, generalMessages };
    }

    const body = error.body;
    if (isPlainObject(body) && body.code === "throttled") {
      // The server's text carries the raw seconds; the wait is shown once, below.
      generalMessages.push("Too many attempts.");
    } else if (isPlainObject(body) && body.code === "invalid_code") {
      // Only the verify form sends a code, so the message belongs under its field.
      fieldMessages.push(["code", [
        ...collectMessages(body.detail),
        "A code works once, for 10 minutes, and at most 5 tries. If yours is used up, send a new code (one per minute).",
      ]]);
    } else if (isPlainObject(body) && body.detail !== undefined) {
      generalMessages.push(...collectMessages(body.detail));
    } else if (isPlainObject(body)) {
      for (const [name, value] of Object.entries(body)) {
        const messages = collectMessages(value);
        if (messages.length === 0) {
          continue;
        }
        if (name === "non_field_errors") {
          generalMessages.push(...messages);
        } else {
          fieldMessages.push([name, messages]);
        }
      }
    } else if (Array.isArray(body)) {
      generalMessages.push(...collectMessages(body));
    }

    if (fieldMessages.length === 0 && generalMessages.length === 0) {
      const isSuccessStatus = error.status >= 200 && error.status < 300;
      generalMessages.push(isSuccessStatus
        ? `The server returned an unexpected response (HTTP ${error.status}).`
        : `The server returned an unexpected error (HTTP ${error.status}).`);
    }
    if ((error.status === 429 || error.status === 503) && error.retryAfterSeconds !== null) {
      generalMessages.push(formatRetryAfter(error.retryAfterSeconds));
    }
    return { fieldMessages, generalMessages };
  }

  // Turns a field name such as "non_field_errors" into a label for messages
  // about fields that have no error element in the form.
  function formatFieldName(name) {
    const words = name.replace(/_/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function clearErrors(form) {
    for (const element of form.querySelectorAll(".field-error, .form-error")) {
      element.textContent = "";
    }
    for (const element of form.querySelectorAll("[aria-invalid]")) {
      element.removeAttribute("aria-invalid");
    }
  }

  // Shows an error in a form: each field message under its input, and every
  // other message in the form's .form-error element, one per line.
  // `leadMessage`, when given, is shown first in .form-error.
  function showErrors(form, error, leadMessage) {
    clearErrors(form);
    const { fieldMessages, generalMessages } = describeError(error);
    const formMessages = leadMessage ? [leadMessage] : [];
    const unplacedMessages = [];
    let firstInvalidInput = null;

    for (const [name, messages] of fieldMessages) {
      const slot = form.querySelector(`.field-error[data-field="${CSS.escape(name)}"]`);
      if (slot === null) {
        unplacedMessages.push(`${formatFieldName(name)}: ${messages.join(" ")}`);
        continue;
      }
      slot.textContent = messages.join(" ");
      const input = form.elements.namedItem(name);
      if (input instanceof HTMLElement) {
        input.setAttribute("aria-invalid", "true");
        firstInvalidInput = firstInvalidInput || input;
      }
    }

    // The retry hint, when present, is the last general message and stays last.
    formMessages.push(...unplacedMessages, ...generalMessages);
    const formError = form.querySelector(".form-error");
    if (formError !== null) {
      formError.textContent = formMessages.join("\n");
    }
    if (firstInvalidInput !== null) {
      firstInvalidInput.focus();
    }
  }

  function describeErrorAsText(error) {
    const { fieldMessages, generalMessages } = describeError(error);
    const fieldLines = fieldMessages.map(([name, messages]) => `${formatFieldName(name)}: ${messages.join(" ")}`);
    return [...fieldLines, ...generalMessages].join("\n");
  }

  // ---------------------------------------------------------------------------
  // Views

  const views = {
    register: document.getElementById("view-register"),
    verify: document.getElementById("view-verify"),
    login: document.getElementById("view-login"),
    profile: document.getElementById("view-profile"),
  };
  const nav = document.getElementById("nav");
  const noticeElement = document.getElementById("notice");
  const registerForm = document.getElementById("register-form");
  const verifyForm = document.getElementById("verify-form");
  const loginForm = document.getElementById("login-form");
  const profileForm = document.getElementById("profile-form");
  const sendCodeButton = document.getElementById("send-code-button");
  const loginVerifyHint = document.getElementById("login-verify-hint");
  const loginVerifyButton = document.getElementById("login-verify-button");
  const logoutButton = document.getElementById("logout-button");
  const profileReloadButton = document.getElementById("profile-reload-button");

  // Username and email from the last sign-up, verification or login in this
  // page, used to prefill the other forms. They are not secret and are kept in memory only.
  let knownUsername = "";
  let knownEmail = "";

  function setNotice(message) {
    noticeElement.textContent = message;
  }

  function clearNotice() {
    noticeElement.textContent = "";
  }

  // Shows exactly one view and updates the navigation and the document title.
  // `focusTarget` is an element to focus, true to focus the view heading, or
  // false to leave the focus where it is (used on page load).
  function showView(name, focusTarget = true) {
    for (const [viewName, section] of Object.entries(views)) {
      section.hidden = viewName !== name;
    }

    const loggedIn = hasTokens();
    nav.hidden = loggedIn;
    for (const item of nav.querySelectorAll("li")) {
      item.hidden = loggedIn;
    }
    for (const button of nav.querySelectorAll("button[data-view]")) {
      if (button.dataset.view === name) {
        button.setAttribute("aria-current", "page");
      } else {
        button.removeAttribute("aria-current");
      }
    }

    document.title = `${VIEW_TITLES[name]} · jwt2fa`;

    if (focusTarget instanceof HTMLElement) {
      focusTarget.focus();
    } else if (focusTarget) {
      views[name].querySelector("h1").focus();
    }
  }

  function showLoginView(focusTarget = true) {
    if (knownUsername && !loginForm.elements.username.value) {
      loginForm.elements.username.value = knownUsername;
    }
    showView("login", focusTarget);
  }

  function showVerifyView(focusTarget = true) {
    if (knownEmail && !verifyForm.elements.email.value) {
      verifyForm.elements.email.value = knownEmail;
    }
    showView("verify", focusTarget);
  }

  // Clears the tokens and every trace of the profile from the page, then shows
  // the login view with `message` in the notice area.
  function endSession(message) {
    clearTokens();
    clearProfile();
    loginForm.elements.password.value = "";
    clearErrors(loginForm);
    loginVerifyHint.hidden = true;
    showLoginView();
    setNotice(message);
  }

  // ---------------------------------------------------------------------------
  // Profile

  const profileElements = {
    loading: document.getElementById("profile-loading"),
    loadError: document.getElementById("profile-load-error"),
    reload: document.getElementById("profile-reload"),
    content: document.getElementById("profile-content"),
    username: document.getElementById("profile-username"),
    email: document.getElementById("profile-email"),
    verified: document.getElementById("profile-verified"),
    joined: document.getElementById("profile-joined"),
    bio: document.getElementById("profile-bio"),
    avatar: document.getElementById("profile-avatar"),
    avatarLink: document.getElementById("profile-avatar-link"),
    avatarMissing: document.getElementById("profile-avatar-missing"),
  };

  // A broken image URL hides the image. The link stays so the address is visible.
  profileElements.avatar.addEventListener("error", () => {
    profileElements.avatar.hidden = true;
  });

  function isHttpUrl(value) {
    return /^https?:\/\//i.test(value);
  }

  function formatDate(value) {
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? value : date.toLocaleString();
  }

  function renderAvatar(avatarUrl) {
    const { avatar, avatarLink, avatarMissing } = profileElements;
    avatar.removeAttribute("src");
    avatarLink.removeAttribute("href");
    avatarLink.textContent = "";

    if (isHttpUrl(avatarUrl)) {
      avatar.src = avatarUrl;
      avatarLink.href = avatarUrl;
      avatarLink.textContent = avatarUrl;
      avatar.hidden = false;
      avatarLink.hidden = false;
      avatarMissing.textContent = "";
      return;
    }

    avatar.hidden = true;
    avatarLink.hidden = true;
    // Values that do not start with http:// or https://, such as javascript: or
    // data: URLs, are never put into src or href.
    avatarMissing.textContent = avatarUrl === ""
      ? "No avatar set."
      : "The avatar URL is not shown because it does not start with http:// or https://.";
  }

  // Shows a profile as returned by GET or PATCH profile/. Every value is set
  // as text, never as HTML, because bio and avatar are chosen by the user.
  function renderProfile(profile) {
    const bio = typeof profile.bio === "string" ? profile.bio : "";
    const avatarUrl = typeof profile.avatar === "string" ? profile.avatar : "";
    const joined = typeof profile.date_joined === "string" ? profile.date_joined : "";

    profileElements.username.textContent = profile.username;
    profileElements.email.textContent = profile.email;
    profileElements.verified.textContent = profile.is_verified ? "Yes" : "No";
    profileElements.joined.dateTime = joined;
    profileElements.joined.textContent = formatDate(joined);
    profileElements.bio.textContent = bio;
    renderAvatar(avatarUrl);

    profileForm.elements.bio.value = bio;
    profileForm.elements.avatar.value = avatarUrl;

    knownUsername = profile.username;
    knownEmail = profile.email;

    profileElements.loading.hidden = true;
    profileElements.loadError.textContent = "";
    profileElements.reload.hidden = true;
    profileElements.content.hidden = false;
  }

  function clearProfile() {
    for (const key of ["username", "email", "verified", "joined", "bio"]) {
      profileElements[key].textContent = "";
    }
    profileElements.joined.removeAttribute("datetime");
    renderAvatar("");
    profileForm.reset();
    clearErrors(profileForm);
    profileElements.content.hidden = true;
    profileElements.loading.hidden = true;
    profileElements.loadError.textContent = "";
    profileElements.reload.hidden = true;
  }

  // Shows the profile view and loads the profile into it. Errors other than
  // an ended session are shown in the view with a button to try again.
  async function loadProfile(focusTarget = true) {
    profileElements.loading.hidden = false;
    profileElements.loadError.textContent = "";
    profileElements.reload.hidden = true;
    showView("profile", focusTarget);

    try {
      const data = await sendAuthenticated("GET", "profile/");
      renderProfile(expectObject(data, 200, ["username", "email"]));
    } catch (error) {
      if (error instanceof SessionEndedError) {
        return;
      }
      profileElements.loading.hidden = true;
      profileElements.loadError.textContent = describeErrorAsText(error);
      profileElements.reload.hidden = false;
    }
  }

  // ---------------------------------------------------------------------------
  // Forms

  // Runs `task` for a submitted form: clears old errors and the notice,
  // disables the submit button until the task ends, and shows any error in
  // the form. Ignores submits while the previous request is in flight.
  async function runFormRequest(form, task) {
    if (form.getAttribute("aria-busy") === "true") {
      return;
    }
    const submitButton = form.querySelector('button[type="submit"]');
    form.setAttribute("aria-busy", "true");
    submitButton.disabled = true;
    clearErrors(form);
    clearNotice();

    try {
      await task();
    } catch (error) {
      if (!(error instanceof SessionEndedError)) {
        showErrors(form, error);
      }
    } finally {
      form.removeAttribute("aria-busy");
      submitButton.disabled = false;
    }
  }

  function handleFormSubmit(form, task) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      runFormRequest(form, task);
    });
  }

  async function register() {
    const username = registerForm.elements.username.value;
    const email = registerForm.elements.email.value;
    const password = registerForm.elements.password.value;

    const data = await sendRequest("POST", "register/", { body: { username, email, password } });
    const account = isPlainObject(data) ? data : {};
    knownUsername = typeof account.username === "string" ? account.username : username;
    knownEmail = typeof account.email === "string" ? account.email : email;
    registerForm.reset();

    // Registration does not send a code by itself, so request the first one here.
    let sendError = null;
    try {
      await sendRequest("POST", "verify/send/", { body: { email: knownEmail } });
    } catch (error) {
      sendError = error;
    }

    verifyForm.elements.email.value = knownEmail;
    verifyForm.elements.code.value = "";
    clearErrors(verifyForm);
    showView("verify", verifyForm.elements.code);
    if (sendError === null) {
      setNotice(`We sent a 6-digit code to ${knownEmail}. It is valid for 10 minutes.`);
    } else {
      showErrors(
        verifyForm,
        sendError,
        "Your account was created, but the verification code could not be sent. Use “Send a new code” to try again.",
      );
    }
  }

  async function verifyEmail() {
    const email = verifyForm.elements.email.value;
    // A code pasted from an email can contain spaces, which are not part of the code.
    const code = verifyForm.elements.code.value.replace(/\s+/g, "");

    await sendRequest("POST", "verify/", { body: { email, code } });
    knownEmail = email;
    verifyForm.elements.code.value = "";
    if (knownUsername) {
      loginForm.elements.username.value = knownUsername;
    }

    const focusTarget = knownUsername ? loginForm.elements.password : loginForm.elements.username;
    showLoginView(focusTarget);
    setNotice("Your email is verified. You can log in now.");
  }

  async function sendNewCode() {
    const emailInput = verifyForm.elements.email;
    if (!emailInput.reportValidity()) {
      return;
    }
    sendCodeButton.disabled = true;
    clearErrors(verifyForm);
    clearNotice();

    try {
      const data = await sendRequest("POST", "verify/send/", { body: { email: emailInput.value } });
      knownEmail = emailInput.value;
      const detail = isPlainObject(data) && typeof data.detail === "string" ? data.detail : "";
      setNotice(detail || "A new code was requested.");
      verifyForm.elements.code.focus();
    } catch (error) {
      showErrors(verifyForm, error);
    } finally {
      sendCodeButton.disabled = false;
    }
  }

  function isNotVerifiedError(error) {
    return error instanceof ApiError
      && error.status === 403
      && isPlainObject(error.body)
      && error.body.code === "not_verified";
  }

  async function logIn() {
    loginVerifyHint.hidden = true;
    const username = loginForm.elements.username.value;
    const password = loginForm.elements.password.value;

    let data;
    try {
      data = await sendRequest("POST", "login/", { body: { username, password } });
    } catch (error) {
      if (isNotVerifiedError(error)) {
        knownUsername = username;
        // runFormRequest shows the server's detail text, and this button leads to the verify view.
        loginVerifyHint.hidden = false;
      }
      throw error;
    }

    const tokens = expectObject(data, 200, ["access", "refresh"]);
    storeTokens({ access: tokens.access, refresh: tokens.refresh });
    loginForm.elements.password.value = "";
    knownUsername = username;
    await loadProfile();
  }

  async function saveProfile() {
    const bio = profileForm.elements.bio.value;
    const avatar = profileForm.elements.avatar.value.trim();

    const data = await sendAuthenticated("PATCH", "profile/", { bio, avatar });
    renderProfile(expectObject(data, 200, ["username", "email"]));
    setNotice("Profile saved.");
  }

  // Revokes the refresh token on the server when possible. The tokens are
  // cleared and the login view is shown even when the request fails.
  async function logOut() {
    logoutButton.disabled = true;
    try {
      if (readTokens().refresh) {
        // The body is built per attempt, so a retry after a refresh sends the rotated refresh token.
        await sendAuthenticated("POST", "logout/", () => ({ refresh: readTokens().refresh }));
      }
    } catch (error) {
      // Nothing to show: the person asked to leave, and the tokens are removed below.
    } finally {
      logoutButton.disabled = false;
    }
    endSession(LOGGED_OUT_MESSAGE);
  }

  // ---------------------------------------------------------------------------
  // Start

  function attachHandlers() {
    handleFormSubmit(registerForm, register);
    handleFormSubmit(verifyForm, verifyEmail);
    handleFormSubmit(loginForm, logIn);
    handleFormSubmit(profileForm, saveProfile);

    sendCodeButton.addEventListener("click", sendNewCode);
    logoutButton.addEventListener("click", logOut);
    profileReloadButton.addEventListener("click", () => loadProfile());
    loginVerifyButton.addEventListener("click", () => {
      clearNotice();
      showVerifyView(verifyForm.elements.email.value ? verifyForm.elements.code : verifyForm.elements.email);
    });

    // Buttons with data-view, in the nav and in the views, switch between the logged-out views.
    document.addEventListener("click", (event) => {
      const button = event.target instanceof Element ? event.target.closest("button[data-view]") : null;
      if (button === null) {
        return;
      }
      clearNotice();
      const name = button.dataset.view;
      if (name === "login") {
        showLoginView();
      } else if (name === "verify") {
        showVerifyView();
      } else {
        showView(name);
      }
    });

    // Logging out in another tab clears the shared tokens, so leave the profile here too.
    window.addEventListener("storage", (event) => {
      const tokenKeyChanged = event.key === null || event.key === ACCESS_TOKEN_KEY || event.key === REFRESH_TOKEN_KEY;
      if (tokenKeyChanged && !hasTokens() && !views.profile.hidden) {
        clearProfile();
        showLoginView();
        setNotice(LOGGED_OUT_MESSAGE);
      }
    });
  }

  function start() {
    attachHandlers();
    if (hasTokens()) {
      loadProfile(false);
    } else {
      showLoginView(false);
    }
  }

  start();
})();
