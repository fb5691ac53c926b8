// Hearth's extension service worker. A click on the toolbar icon is the user's gesture: it
// grants `activeTab` for that tab (so the side panel may read it once) and opens the panel.
// The engine itself runs in the side panel (and its Worker), not here.

chrome.action.onClicked.addListener((tab) => {
  // sidePanel.open must be called while the click's user gesture is live: before any await.
  const opened = chrome.sidePanel.open({ windowId: tab.windowId }).catch((e) => console.warn("Hearth: side panel:", e.message));
  const remembered = chrome.storage.session.set({ targetTab: { id: tab.id, windowId: tab.windowId, title: tab.title ?? "" } });
  return Promise.all([opened, remembered]);
});
