// Floodgate failover page: CloudFront Function (cloudfront-js-2.0), viewer response, on the
// behaviours served by the portal origin group. After a failover CloudFront asks the pages
// bucket for the viewer's own path; the bucket holds only /high-demand/, so S3 answers 403
// (no ListBucket). Such an answer is replaced by a redirect to the high-demand page, so no
// viewer ever sees S3's XML error. Responses from the portal itself are left untouched.
var PAGE = '/high-demand/index.html';

function handler(event) {
  var response = event.response;
  var server = response.headers.server;
  var fromBucket = server && server.value === 'AmazonS3';
  var missing = response.statusCode === 403 || response.statusCode === 404;
  if (!fromBucket || !missing || event.request.uri.indexOf('/high-demand/') === 0) {
    return response;
  }
  return {
    statusCode: 302,
    statusDescription: 'Found',
    headers: { location: { value: PAGE }, 'cache-control': { value: 'no-store' } },
  };
}
